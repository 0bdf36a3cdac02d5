"""The one pipeline builder: train.py, eval.py (and evaluation during training) and the pipeline benchmark all read
images through `create_dataset`.

Training shards the split over the ranks (MindSpore's sharding of a shuffled source), shuffles with a seed so an
epoch's order can be rebuilt on resume, and drops the last partial batch. Evaluation gives rank r of n the images
r, r + n, r + 2n, ... (an explicit index list: no shard is padded with repeated images, so every image is counted
exactly once) and keeps the last partial batch.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .folder import CheckedImageSource, scan_image_folder, split_dir
from .transforms import eval_transforms, train_transforms


def default_workers(group_size: int = 1) -> int:
    """Dataset threads per device: the cores this rank's share allows, between 1 and 8."""
    return max(1, min(8, (os.cpu_count() or 1) // max(1, group_size)))


def rank_indices(num_samples: int, rank: int, group_size: int) -> List[int]:
    """Indices rank `rank` evaluates: a strided slice, so the ranks' lists partition range(num_samples)."""
    return list(range(rank, num_samples, max(1, group_size)))


def eval_source(samples, rank: int = 0, group_size: int = 1) -> CheckedImageSource:
    """This rank's share of an evaluation split; a bad file becomes a blank image recorded in `bad`."""
    return CheckedImageSource([samples[i] for i in rank_indices(len(samples), rank, group_size)], on_bad="blank")


def create_dataset(cfg, split: str, training: bool, rank: int = 0, group_size: int = 1, seed: Optional[int] = None,
                   source: Optional[CheckedImageSource] = None) -> Tuple[Optional[object], List[str]]:
    """Batched dataset of (image float32 CHW, label int32) for `split`; returns (dataset, class_names).

    With mixup/cutmix on, training yields soft float32 targets of shape (batch, num_classes). `source` (a
    CheckedImageSource) is where unreadable files are recorded; one is made when not given. The dataset is None
    when this rank has no image to evaluate.
    """
    import mindspore.dataset as ds
    from mindspore import dtype as mstype
    from mindspore.dataset import transforms

    samples, classes = scan_image_folder(split_dir(cfg.data_dir, split))
    if source is None:
        source = (CheckedImageSource(samples, strict=cfg.strict_data) if training
                  else eval_source(samples, rank, group_size))
    if not len(source):
        return None, classes
    if seed is not None:
        ds.config.set_seed(seed)
    workers = cfg.num_parallel_workers or default_workers(group_size)
    shards = dict(num_shards=group_size, shard_id=rank) if training and group_size > 1 else {}
    # One source thread: it only reads file bytes (decode and augmentation run in the map workers), and more
    # Python threads fight over the GIL: 2 source threads made 2 map workers 2.5x slower than 1 (benchmarks/).
    dataset = ds.GeneratorDataset(source, column_names=["image", "label"], shuffle=training, num_parallel_workers=1,
                                  python_multiprocessing=False, **shards)
    ops = train_transforms(cfg) if training else eval_transforms(cfg)
    dataset = dataset.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    dataset = dataset.map(operations=transforms.TypeCast(mstype.int32), input_columns="label",
                          num_parallel_workers=workers)
    if not training:
        return dataset.batch(cfg.eval_batch_size or cfg.batch_size, drop_remainder=False), classes
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from .augment import MixupCutmix

        mixer = MixupCutmix(cfg.num_classes, cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob,
                            cfg.label_smooth_factor, seed)
        return dataset.batch(cfg.batch_size, drop_remainder=True, per_batch_map=mixer,
                             input_columns=["image", "label"], num_parallel_workers=1), classes
    return dataset.batch(cfg.batch_size, drop_remainder=True), classes
