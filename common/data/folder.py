"""ImageFolder trees: finding the split, listing (path, label) pairs, and the one check of an image file.

Every reader of images (training, evaluation, the --strict_data check, prediction) asks `image_problem`, so a file
is judged the same way everywhere. `CheckedImageSource` is the random-access source the pipelines read through:
it reads file bytes (decoding happens in the pipeline's workers) and deals with bad files by a policy chosen per use.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

# Leading bytes of the formats Decode reads; a file matching none of them is not an image.
_JPEG = b"\xff\xd8\xff"
_MAGIC = {_JPEG: "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"BM": "bmp", b"II*\x00": "tiff",
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


# root -> (stamp of the root and its class folders, samples, classes): the scan of this process, see scan_image_folder.
_SCANS: Dict[str, Tuple[tuple, List[Tuple[str, int]], List[str]]] = {}


def _folder_stamp(root: str, classes: Sequence[str]) -> tuple:
    """(name, size, mtime_ns) of the root and each class folder: adding, removing or renaming a file in a folder
    changes its mtime, so a changed stamp means the file list may have changed."""
    stamp = []
    for name in ("", *classes):
        st = os.stat(os.path.join(root, name))
        stamp.append((name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


def scan_cache_dir() -> str:
    """Where scans are kept for other processes: $ZOO_SCAN_CACHE, else ~/.cache/mindspore-zoo/scans
    ($XDG_CACHE_HOME respected); '' or 'off' keeps scans in the process only."""
    chosen = os.environ.get("ZOO_SCAN_CACHE")
    if chosen is not None:
        return "" if chosen.lower() in ("", "off", "0") else chosen
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mindspore-zoo", "scans")


@contextlib.contextmanager
def _scan_lock(path: str) -> Iterator[None]:
    """An exclusive lock on `path` (the ranks of a host wait while one of them scans), or none where the
    platform or the file system has no flock: a cache, so racing writers only cost a second scan."""
    try:
        import fcntl

        handle = open(path, "a+")
    except (ImportError, OSError):
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass
        yield


def _read_shared_scan(path: str, root: str, real_root: str, stamp: tuple) -> Optional[List[Tuple[str, int]]]:
    """The samples in the cache file at `path` when it is the scan of `real_root` with this stamp (which names the
    class folders; paths joined onto `root` as the caller spelled it), else None."""
    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except (OSError, ValueError):
        return None
    if saved.get("root") != real_root or [tuple(e) for e in saved.get("stamp", [])] != list(stamp):
        return None
    return [(os.path.join(root, name, f), label)
            for label, (name, files) in enumerate(zip(saved["classes"], saved["files"])) for f in files]


def _write_shared_scan(path: str, real_root: str, stamp: tuple, classes: Sequence[str],
                       samples: Sequence[Tuple[str, int]]) -> None:
    """Keep a scan in the cache file at `path` (file names per class); a folder we cannot write to is no error:
    it only costs the next process a scan."""
    files: List[List[str]] = [[] for _ in classes]
    for sample_path, label in samples:
        files[label].append(os.path.basename(sample_path))
    record = {"root": real_root, "stamp": stamp, "classes": list(classes), "files": files}

    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh, separators=(",", ":"))  # compact: the C encoder, for 1.28 M names
    try:
        atomic_write(path, dump, "scan cache", "")
    except UserError:
        pass


def _list_classes(root: str, classes: Sequence[str]) -> List[Tuple[str, int]]:
    samples = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise UserError(f"class folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...)")
        samples.extend((os.path.join(folder, f), label) for f in files)
    return samples


def scan_image_folder(root: str) -> Tuple[List[Tuple[str, int]], List[str]]:
    """(path, label) pairs sorted by class then file name, and the sorted class names.

    Refuses a folder without class sub-folders and a class folder without images, naming it. A scan is kept for
    the rest of the process, and in a file under `scan_cache_dir()` for the other ranks of the host and later runs,
    and handed out again while the root and class folders keep their size and mtime (one stat per class folder
    instead of listing 1.28 M ImageNet files on every rank, every epoch); a changed folder is scanned again. While
    one process scans, the others wait for its file.
    """
    cached = _SCANS.get(root)
    if cached is not None:
        try:
            if _folder_stamp(root, cached[2]) == cached[0]:
                return list(cached[1]), list(cached[2])
        except OSError:
            pass  # a class folder went away: scan again, which names the problem
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not classes:
        raise UserError(f"'{root}' has no class folders; expected {root}/<class_name>/<image files>")
    stamp = _folder_stamp(root, classes)
    cache_dir = scan_cache_dir()
    if not cache_dir:
        samples = _list_classes(root, classes)
    else:
        real_root = os.path.realpath(root)
        path = os.path.join(cache_dir, f"{hashlib.sha256(real_root.encode()).hexdigest()[:24]}.json")
        try:
            os.makedirs(cache_dir, exist_ok=True)
        except OSError:
            pass
        with _scan_lock(path + ".lock"):
            samples = _read_shared_scan(path, root, real_root, stamp)
            if samples is None:
                samples = _list_classes(root, classes)
                _write_shared_scan(path, real_root, stamp, classes, samples)
    _SCANS[root] = (stamp, samples, classes)
    return list(samples), list(classes)


def image_problem(data: bytes, decode: bool = False) -> Optional[str]:
    """Why `data` cannot be a whole image file, or None: empty, unknown format, or a truncated JPEG/PNG.

    The cheap check reads only the header and the end marker: a JPEG must hold its end-of-image marker FFD9 near
    the end (some writers pad after it), a PNG its IEND chunk. With `decode` the image is also decoded in full
    (PIL), for the rare file whose header and end are fine but whose data is not.
    """
    if not data:
        return "empty file"
    # JPEG first, searched in place: this runs for every image read, under the GIL the reader's thread needs
    kind = "jpeg" if data.startswith(_JPEG) else next((k for m, k in _MAGIC.items() if data.startswith(m)), None)
    if kind is None:
        return "not an image (unknown file header)"
    if kind == "jpeg" and data.rfind(b"\xff\xd9", max(0, len(data) - 1024)) < 0:
        return "truncated JPEG (no end-of-image marker)"
    if kind == "png" and data.rfind(b"IEND", max(0, len(data) - 64)) < 0:
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


def _frozen_label(label: int) -> np.ndarray:
    """The int32 label row, made once per class and handed out read-only (the pipeline copies it)."""
    array = np.array(label, dtype=np.int32)
    array.flags.writeable = False
    return array


def _blank_png() -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


# Items a read-ahead task reads in one go: one task hand-off per 16 files, not per file (the hand-off costs about
# as much CPU as reading a 100 kB file from page cache).
_RUN = 16


class CheckedImageSource:
    """Random-access (encoded bytes, label) source over `samples` that never hands a bad file to the decoder.

    A bad file is recorded in `bad` (path -> reason). Then, by `on_bad`: "next" (training) warns once on stderr
    naming it, yields the next good sample instead, so batches keep their size, and counts every replacement in
    `skipped`; "blank" (evaluation) yields a blank image in its place, so the caller can refuse the split
    afterwards naming the file, without counting a wrong image. With `strict`, `raise_if_bad` turns the first
    bad file into an error.

    `order` (a permutation of the sample indices, or None) is the order item i is read in: the training pipeline
    sets it per epoch. With `readahead` > 1, reading item i also starts reading the items after it, in runs of 16,
    `readahead` runs at a time on as many threads: file reads release the GIL, so several files are in flight at
    once (NFS latency), while the item
    for an index stays the same whatever thread read it.
    """

    def __init__(self, samples: Sequence[Tuple[str, int]], strict: bool = False, on_bad: str = "next",
                 readahead: int = 0) -> None:
        if on_bad not in ("next", "blank"):
            raise ValueError(f"on_bad must be 'next' or 'blank', not {on_bad!r}")
        self.samples = list(samples)
        self.strict, self.on_bad = strict, on_bad
        self.order: Optional[Sequence[int]] = None
        self.readahead = readahead
        self.bad: Dict[str, str] = {}
        self.skipped = 0
        self._lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pending: "OrderedDict[int, Future]" = OrderedDict()  # run number -> its items
        self._current: tuple = (-1, None, [])  # (run number, the order it was read in, its items): the fast path
        self._labels = {label: _frozen_label(label) for label in {label for _, label in self.samples}}

    def __len__(self) -> int:
        return len(self.samples)

    def _record(self, path: str, problem: str) -> None:
        with self._lock:
            self.skipped += 1
            if path not in self.bad:
                self.bad[path] = problem
                if self.on_bad == "next":
                    print(f"warning: skipping image '{path}': {problem}", file=sys.stderr, flush=True)

    def _load(self, index: int):
        tries = len(self.samples) if self.on_bad == "next" else 1
        for offset in range(tries):
            position = (index + offset) % len(self.samples)
            path, label = self.samples[self.order[position] if self.order is not None else position]
            data, problem = read_image_file(path)
            if problem is None:
                return np.frombuffer(data, dtype=np.uint8), self._labels[label]
            self._record(path, problem)
        if self.on_bad == "blank":
            return _blank_png(), self._labels[self.samples[index][1]]
        raise RuntimeError("no readable image in the data set")

    def _load_run(self, first: int) -> list:
        return [self._load(i) for i in range(first, min(first + _RUN, len(self.samples)))]

    def __getitem__(self, index: int):
        if self.readahead <= 1:
            return self._load(index)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.readahead, thread_name_prefix="image-reader")
        run = index // _RUN
        current, order, items = self._current
        if run == current and order is self.order:  # 15 of 16 rows: no scheduling, no future to wait on
            return items[index - run * _RUN]
        while self._pending and next(iter(self._pending)) < run:  # the reader jumped ahead (a resumed epoch)
            self._pending.popitem(last=False)
        for ahead in range(run, min(run + self.readahead, (len(self.samples) + _RUN - 1) // _RUN)):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._load_run, ahead * _RUN)
        items = self._pending[run].result()
        self._current = (run, self.order, items)
        return items[index - run * _RUN]

    def close(self) -> None:
        """Stop the read-ahead threads (a new epoch's pipeline starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, OrderedDict()
        self._current = (-1, None, [])

    def raise_if_bad(self) -> None:
        """With `strict`, a UserError naming the first bad file."""
        if self.strict and self.bad:
            path, problem = next(iter(self.bad.items()))
            raise UserError(f"image '{path}': {problem}; remove or replace the file, or drop --strict_data to skip "
                            f"unreadable images with a warning")


def check_data_files(samples: Sequence[Tuple[str, int]], threads: int = 8) -> None:
    """Read every file's header and end marker up front (the --strict_data check), `threads` files at a time (file
    reads release the GIL; on NFS the latency, not the CPU, is the limit); the first bad file in list order is an
    error."""
    paths = [path for path, _ in samples]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for path, (_, problem) in zip(paths, pool.map(read_image_file, paths, chunksize=64)):
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
