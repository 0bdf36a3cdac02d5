"""ImageFolder data pipelines on mindspore.dataset (train and eval transforms, sharding by rank)."""
from __future__ import annotations

import os
import sys
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import UserError

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


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


def eval_size(image_size: int, crop_pct: float) -> int:
    """Shorter-side resize before the centre crop: 224 / 0.875 = 256."""
    return int(round(image_size / crop_pct))


def _inter(name: str):
    from mindspore.dataset.vision import Inter

    return Inter.BICUBIC if name == "bicubic" else Inter.BILINEAR


def eval_transforms(cfg) -> list:
    """Decode, resize shorter side to image_size / crop_pct, centre crop, normalise, HWC->CHW."""
    from mindspore.dataset import vision

    return [vision.Decode(), vision.Resize(eval_size(cfg.image_size, cfg.crop_pct), _inter(cfg.interpolation)),
            vision.CenterCrop(cfg.image_size), vision.Normalize(IMAGENET_MEAN, IMAGENET_STD), vision.HWC2CHW()]


def train_transforms(cfg) -> list:
    """Fused decode + RandomResizedCrop, flip, RandAugment or colour jitter, normalise, HWC->CHW, random erasing.

    As in timm, colour jitter is left out when a RandAugment policy is set (the policy has its own colour ops).
    """
    from mindspore.dataset import vision

    from .augment import rand_augment, random_erasing

    ops: list = [vision.RandomCropDecodeResize(cfg.image_size, scale=(cfg.scale_min, 1.0), ratio=(3 / 4, 4 / 3),
                                               interpolation=_inter(cfg.interpolation))]
    if cfg.hflip > 0:
        ops.append(vision.RandomHorizontalFlip(cfg.hflip))
    if cfg.get("auto_augment"):
        ops.append(rand_augment(cfg.auto_augment, _inter(cfg.interpolation)))
    elif cfg.color_jitter > 0:
        j = cfg.color_jitter
        ops.append(vision.RandomColorAdjust(brightness=j, contrast=j, saturation=j))
    ops += [vision.Normalize(IMAGENET_MEAN, IMAGENET_STD), vision.HWC2CHW()]
    if cfg.get("re_prob", 0) > 0:
        ops.append(random_erasing(cfg.re_prob))
    return ops


def default_workers(group_size: int = 1) -> int:
    """Dataset threads per device: the cores this rank's share allows, between 1 and 8."""
    return max(1, min(8, (os.cpu_count() or 1) // max(1, group_size)))


# Leading bytes of the formats Decode reads; a file matching none of them is not an image.
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"BM": "bmp", b"II*\x00": "tiff",
          b"MM\x00*": "tiff", b"P5": "pgm", b"P6": "ppm", b"RIFF": "webp"}


def image_problem(data: bytes) -> Optional[str]:
    """Why `data` cannot be a whole image file, or None: empty, unknown format, or a truncated JPEG/PNG.

    Checks only the header and the end marker (cheap, no decoding): a JPEG must hold its end-of-image marker
    FFD9 near the end (some writers pad after it), a PNG its IEND chunk.
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
    return None


class CheckedImageSource:
    """Random-access (encoded bytes, label) source that skips unreadable files.

    A bad file is reported once on stderr with its name and replaced by the next good sample, so batches keep
    their size; `bad` maps each bad path to the reason and `skipped` counts every replacement (for the count at
    epoch end). With `strict` the training loop turns the first bad file into an error (see `raise_if_bad`).
    """

    def __init__(self, samples: Sequence[Tuple[str, int]], strict: bool = False) -> None:
        self.samples = list(samples)
        self.strict = strict
        self.bad: Dict[str, str] = {}
        self.skipped = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, path: str) -> Tuple[Optional[bytes], Optional[str]]:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror})"
        return data, image_problem(data)

    def __getitem__(self, index: int):
        for offset in range(len(self.samples)):
            path, label = self.samples[(index + offset) % len(self.samples)]
            data, problem = self._read(path)
            if problem is None:
                return np.frombuffer(data, dtype=np.uint8), np.array(label, dtype=np.int32)
            with self._lock:
                self.skipped += 1
                if path not in self.bad:
                    self.bad[path] = problem
                    print(f"warning: skipping image '{path}': {problem}", file=sys.stderr, flush=True)
        raise RuntimeError("no readable image in the data set")

    def raise_if_bad(self) -> None:
        """With `strict`, a UserError naming the first bad file."""
        if self.strict and self.bad:
            path, problem = next(iter(self.bad.items()))
            raise UserError(f"image '{path}': {problem}; remove or replace the file, or drop --strict_data to skip "
                            f"unreadable images with a warning")


def check_data_files(samples: Sequence[Tuple[str, int]]) -> None:
    """Read every file's header and end marker up front (the --strict_data check); first bad file is an error."""
    source = CheckedImageSource(samples, strict=True)
    for path, _ in samples:
        _, problem = source._read(path)
        if problem is not None:
            source.bad[path] = problem
            source.raise_if_bad()


def create_dataset(cfg, split: str, training: bool, rank: int = 0, group_size: int = 1, seed: Optional[int] = None,
                   source: Optional[CheckedImageSource] = None):
    """Batched dataset of (image float32 CHW, label int32) for `split`; returns (dataset, class_names).

    Training shuffles (with `seed`, so an epoch's order can be rebuilt on resume), drops the last partial batch
    and, with mixup/cutmix on, yields soft float32 targets of shape (batch, num_classes). Eval keeps every image in
    order. Unreadable images are skipped through `source` (a CheckedImageSource; one is made when not given).
    """
    import mindspore.dataset as ds
    from mindspore import dtype as mstype
    from mindspore.dataset import transforms

    root = split_dir(cfg.data_dir, split)
    samples, classes = scan_image_folder(root)
    if source is None:
        source = CheckedImageSource(samples, strict=cfg.strict_data)
    if seed is not None:
        ds.config.set_seed(seed)
    workers = cfg.num_parallel_workers or default_workers(group_size)
    # One source thread: it only reads file bytes (decode and augmentation run in the map workers), and more
    # Python threads fight over the GIL: 2 source threads made 2 map workers 2.5x slower than 1 (benchmarks/).
    dataset = ds.GeneratorDataset(source, column_names=["image", "label"], shuffle=training,
                                  num_shards=group_size if group_size > 1 else None,
                                  shard_id=rank if group_size > 1 else None,
                                  num_parallel_workers=1, python_multiprocessing=False)
    ops = train_transforms(cfg) if training else eval_transforms(cfg)
    dataset = dataset.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    dataset = dataset.map(operations=transforms.TypeCast(mstype.int32), input_columns="label",
                          num_parallel_workers=workers)
    batch = cfg.batch_size if training or not cfg.eval_batch_size else cfg.eval_batch_size
    if training and (cfg.mixup > 0 or cfg.cutmix > 0):
        from .augment import MixupCutmix

        mixer = MixupCutmix(cfg.num_classes, cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob,
                            cfg.label_smooth_factor, seed)
        return dataset.batch(batch, drop_remainder=True, per_batch_map=mixer, input_columns=["image", "label"],
                             num_parallel_workers=1), classes
    return dataset.batch(batch, drop_remainder=training), classes
