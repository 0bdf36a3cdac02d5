"""ImageFolder data pipelines on mindspore.dataset (train and eval transforms, sharding by rank)."""
from __future__ import annotations

import os
from typing import List, Tuple

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
    """Fused decode + RandomResizedCrop, flip, colour jitter, normalise, HWC->CHW."""
    from mindspore.dataset import vision

    ops: list = [vision.RandomCropDecodeResize(cfg.image_size, scale=(cfg.scale_min, 1.0), ratio=(3 / 4, 4 / 3),
                                               interpolation=_inter(cfg.interpolation))]
    if cfg.hflip > 0:
        ops.append(vision.RandomHorizontalFlip(cfg.hflip))
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        ops.append(vision.RandomColorAdjust(brightness=j, contrast=j, saturation=j))
    ops += [vision.Normalize(IMAGENET_MEAN, IMAGENET_STD), vision.HWC2CHW()]
    return ops


def default_workers(group_size: int = 1) -> int:
    """Dataset threads per device: the cores this rank's share allows, between 1 and 8."""
    return max(1, min(8, (os.cpu_count() or 1) // max(1, group_size)))


def create_dataset(cfg, split: str, training: bool, rank: int = 0, group_size: int = 1):
    """Batched dataset of (image float32 CHW, label int32) for `split`; returns (dataset, class_names).

    Training shuffles and drops the last partial batch; eval keeps every image in order.
    """
    import mindspore.dataset as ds
    from mindspore import dtype as mstype
    from mindspore.dataset import transforms

    root = split_dir(cfg.data_dir, split)
    _, classes = scan_image_folder(root)
    workers = cfg.num_parallel_workers or default_workers(group_size)
    dataset = ds.ImageFolderDataset(root, shuffle=training, decode=False,
                                    class_indexing={c: i for i, c in enumerate(classes)},
                                    num_shards=group_size if group_size > 1 else None,
                                    shard_id=rank if group_size > 1 else None, num_parallel_workers=workers)
    ops = train_transforms(cfg) if training else eval_transforms(cfg)
    dataset = dataset.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    dataset = dataset.map(operations=transforms.TypeCast(mstype.int32), input_columns="label",
                          num_parallel_workers=workers)
    batch = cfg.batch_size if training or not cfg.eval_batch_size else cfg.eval_batch_size
    return dataset.batch(batch, drop_remainder=training), classes
