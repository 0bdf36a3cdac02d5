"""ImageFolder trees: finding the split, listing (path, label) pairs, and the one check of an image file.

Every reader of images (training, evaluation, the --strict_data check, prediction) asks `image_problem`, so a file
is judged the same way everywhere. `CheckedImageSource` is the random-access source the pipelines read through:
it reads file bytes (decoding happens in the pipeline's workers) and deals with bad files by a policy chosen per use.
"""
from __future__ import annotations

import io
import os
import sys
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

# Leading bytes of the formats Decode reads; a file matching none of them is not an image.
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"BM": "bmp", b"II*\x00": "tiff",
          b"MM\x00*": "tiff", b"P5": "pgm", b"P6": "ppm", b"RIFF": "webp"}


def split_dir(data_dir: str, split: str) -> str:
    """`data_dir/split` when it exists, else `data_dir` itself when it is a split folder (holds class folders)."""
    if not data_dir:
        raise UserError("--data_dir is not set; pass an ImageFolder root with train/ and val/ class folders")
    if not os.path.isdir(data_dir):
        raise UserError(f"--data_dir '{data_dir}' does not exist; pass an ImageFolder root with train/ and val/")
    candidate = os.path.join(data_dir, split)
    if os.path.isdir(candidate):
        return candidate
    others = [d for d in ("train", "val") if os.path.isdir(os.path.join(data_dir, d))]
    if others:
        raise UserError(f"--data_dir '{data_dir}' has {others[0]}/ but no {split}/; add {split}/<class>/ folders")
    return data_dir


def scan_image_folder(root: str) -> Tuple[List[Tuple[str, int]], List[str]]:
    """(path, label) pairs sorted by class then file name, and the sorted class names.

    Refuses a folder without class sub-folders and a class folder without images, naming it.
    """
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not classes:
        raise UserError(f"'{root}' has no class folders; expected {root}/<class_name>/<image files>")
    samples = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise UserError(f"class folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...)")
        samples.extend((os.path.join(folder, f), label) for f in files)
    return samples, classes


def image_problem(data: bytes, decode: bool = False) -> Optional[str]:
    """Why `data` cannot be a whole image file, or None: empty, unknown format, or a truncated JPEG/PNG.

    The cheap check reads only the header and the end marker: a JPEG must hold its end-of-image marker FFD9 near
    the end (some writers pad after it), a PNG its IEND chunk. With `decode` the image is also decoded in full
    (PIL), for the rare file whose header and end are fine but whose data is not.
    """
    if not data:
        return "empty file"
    kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None:
        return "not an image (unknown file header)"
    if kind == "jpeg" and b"\xff\xd9" not in data[-1024:]:
        return "truncated JPEG (no end-of-image marker)"
    if kind == "png" and b"IEND" not in data[-64:]:
        return "truncated PNG (no IEND chunk)"
    if decode:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
        except (OSError, ValueError, SyntaxError) as exc:
            return f"cannot be decoded ({type(exc).__name__})"
    return None


def read_image_file(path: str, decode: bool = False) -> Tuple[Optional[bytes], Optional[str]]:
    """(bytes, None) for a good image file, else (bytes or None, why not)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    return data, image_problem(data, decode)


def _blank_png() -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


class CheckedImageSource:
    """Random-access (encoded bytes, label) source over `samples` that never hands a bad file to the decoder.

    A bad file is recorded in `bad` (path -> reason). Then, by `on_bad`: "next" (training) warns once on stderr
    naming it, yields the next good sample instead, so batches keep their size, and counts every replacement in
    `skipped`; "blank" (evaluation) yields a blank image in its place, so the caller can refuse the split
    afterwards naming the file, without counting a wrong image. With `strict`, `raise_if_bad` turns the first
    bad file into an error.
    """

    def __init__(self, samples: Sequence[Tuple[str, int]], strict: bool = False, on_bad: str = "next") -> None:
        if on_bad not in ("next", "blank"):
            raise ValueError(f"on_bad must be 'next' or 'blank', not {on_bad!r}")
        self.samples = list(samples)
        self.strict, self.on_bad = strict, on_bad
        self.bad: Dict[str, str] = {}
        self.skipped = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.samples)

    def _record(self, path: str, problem: str) -> None:
        with self._lock:
            self.skipped += 1
            if path not in self.bad:
                self.bad[path] = problem
                if self.on_bad == "next":
                        print(f"warning: skipping image '{path}': {problem}", file=sys.stderr, flush=True)

    def __getitem__(self, index: int):
        tries = len(self.samples) if self.on_bad == "next" else 1
        for offset in range(tries):
            path, label = self.samples[(index + offset) % len(self.samples)]
            data, problem = read_image_file(path)
            if problem is None:
                return np.frombuffer(data, dtype=np.uint8), np.array(label, dtype=np.int32)
            self._record(path, problem)
        if self.on_bad == "blank":
            return _blank_png(), np.array(self.samples[index][1], dtype=np.int32)
        raise RuntimeError("no readable image in the data set")

    def raise_if_bad(self) -> None:
        """With `strict`, a UserError naming the first bad file."""
        if self.strict and self.bad:
            path, problem = next(iter(self.bad.items()))
            raise UserError(f"image '{path}': {problem}; remove or replace the file, or drop --strict_data to skip "
                            f"unreadable images with a warning")


def check_data_files(samples: Sequence[Tuple[str, int]]) -> None:
    """Read every file's header and end marker up front (the --strict_data check); first bad file is an error."""
    for path, _ in samples:
        _, problem = read_image_file(path)
        if problem is not None:
            source = CheckedImageSource([], strict=True)
            source.bad[path] = problem
            source.raise_if_bad()


def first_undecodable(samples: Sequence[Tuple[str, int]]) -> str:
    """Path of the first sample that fails a full decode ('' when all decode): after a pipeline failure only."""
    for path, _ in samples:
        if read_image_file(path, decode=True)[1] is not None:
            return path
    return ""
