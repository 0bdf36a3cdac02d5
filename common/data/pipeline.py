"""The one pipeline builder: train.py, eval.py (and evaluation during training) and the pipeline benchmark all read
images through `create_dataset`.

Training gives each rank a fixed shard for the whole run (`train_shard`: a seeded permutation of the split, dealt
out like cards, so the shards are disjoint, equal in size and their union is the epoch less fewer than `group_size`
images), the shard the --strict_data check reads before the collective starts; each epoch reads the shard in an
order drawn from the epoch's seed (`epoch_order`), so a resumed run rebuilds it exactly, and drops the last partial
batch. Evaluation gives rank r of n the images
r, r + n, r + 2n, ... (an explicit index list: no shard is padded with repeated images, so every image is counted
exactly once) and keeps the last partial batch.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .folder import CheckedImageSource, scan_image_folder, split_dir
from .transforms import eval_transforms, train_transforms

# Launcher variables that say (rank, size) before the collective starts: rank table / mpirun scripts, msrun (which
# sets MS_NODE_ID when it knows the rank up front, and RANK_ID with it), OpenMPI.
# Ranks per host when no launcher variable says so: an Ascend 910 server and a V100 server hold 8 devices each.
_DEVICES_PER_HOST = 8


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (what taskset/numactl/msrun --bind_core left it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def local_ranks(group_size: int) -> int:
    """Ranks sharing this host: OpenMPI says so; otherwise up to 8 (one server's devices)."""
    local = os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", "")
    if local.isdigit() and int(local) > 0:
        return int(local)
    return max(1, min(group_size, _DEVICES_PER_HOST))


def default_workers(group_size: int = 1) -> int:
    """Map workers per device, no fixed cap: the cores this rank may use. A rank pinned to its own cores uses them
    all; an unpinned rank (affinity = every core of the host) takes its 1/local_ranks share."""
    cores = usable_cores()
    if cores >= (os.cpu_count() or cores):
        cores //= local_ranks(group_size)
    return max(1, cores)


def train_shard(samples: Sequence, rank: int, group_size: int, seed: int) -> list:
    """Rank `rank`'s training samples for the whole run: item rank, rank + n, ... of a permutation drawn from `seed`,
    cut to len // n so every rank steps the same number of times. Disjoint across ranks; a random deal, so no rank
    gets a run of one class."""
    n = max(1, group_size)
    perm = np.random.default_rng([seed, 0x5EED]).permutation(len(samples))
    mine = perm[rank::n][: len(samples) // n]
    return [samples[i] for i in mine]


def epoch_order(num_samples: int, seed: int) -> List[int]:
    """The order an epoch reads a shard in: a permutation drawn from the epoch's seed alone (exact resume)."""
    return np.random.default_rng(seed).permutation(num_samples).tolist()


def rank_indices(num_samples: int, rank: int, group_size: int) -> List[int]:
    """Indices rank `rank` evaluates: a strided slice, so the ranks' lists partition range(num_samples)."""
    return list(range(rank, num_samples, max(1, group_size)))


def eval_source(samples, rank: int = 0, group_size: int = 1, readahead: int = 4) -> CheckedImageSource:
    """This rank's share of an evaluation split; a bad file becomes a blank image recorded in `bad`."""
    return CheckedImageSource([samples[i] for i in rank_indices(len(samples), rank, group_size)], on_bad="blank",
                              readahead=readahead)


def train_source(samples, cfg, rank: int = 0, group_size: int = 1) -> CheckedImageSource:
    """This rank's training shard (`train_shard` with cfg.seed), bad files skipped and named (or refused, strict)."""
    return CheckedImageSource(train_shard(samples, rank, group_size, cfg.seed), strict=cfg.strict_data,
                              readahead=cfg.get("reader_threads", 4))


def reader_dataset(source: CheckedImageSource):
    """The reader alone: rows of (encoded bytes uint8, label int32) from `source`, in its order.

    The source runs in one Python thread that hands out rows in order; its read-ahead threads read the files
    (decode and augmentation run in the C++ map workers). More GeneratorDataset threads would fight over the GIL.
    """
    import mindspore.dataset as ds

    return ds.GeneratorDataset(source, column_names=["image", "label"], shuffle=False, num_parallel_workers=1,
                               python_multiprocessing=False)


def create_dataset(cfg, split: str, training: bool, rank: int = 0, group_size: int = 1, seed: Optional[int] = None,
                   source: Optional[CheckedImageSource] = None) -> Tuple[Optional[object], List[str]]:
    """Batched dataset of (image float32 CHW, label int32) for `split`; returns (dataset, class_names).

    With mixup/cutmix on, training yields soft float32 targets of shape (batch, num_classes). `source` (a
    CheckedImageSource; for training, this rank's shard from `train_source`) is where unreadable files are
    recorded; one is made when not given. Training reads the source in `epoch_order(len, seed)`. The dataset is
    None when this rank has no image to evaluate.
    """
    import mindspore.dataset as ds

    samples, classes = scan_image_folder(split_dir(cfg.data_dir, split))
    if source is None:
        source = train_source(samples, cfg, rank, group_size) if training else eval_source(samples, rank, group_size)
    if not len(source):
        return None, classes
    if seed is not None:
        ds.config.set_seed(seed)
    if training:
        source.close()
        source.order = epoch_order(len(source), cfg.seed if seed is None else seed)
    workers = cfg.num_parallel_workers or default_workers(group_size)
    dataset = reader_dataset(source)
    ops = train_transforms(cfg) if training else eval_transforms(cfg)
    dataset = dataset.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    if not training:
        return dataset.batch(cfg.eval_batch_size or cfg.batch_size, drop_remainder=False), classes
    from .augment import batch_augment

    mixer = batch_augment(cfg, seed)
    if mixer is None:
        return dataset.batch(cfg.batch_size, drop_remainder=True), classes
    processes = bool(cfg.get("python_multiprocessing", False))
    # In threads, one batch worker: a second one fought the map workers for the GIL (ResNeSt recipe, 2 map workers,
    # 224 px: 502 img/s with one, 434 with two, medians of 5 alternating runs, RESULTS.md round 8, NumPy batch map),
    # and the native pass (0.11 ms of CPU per image, GIL released, round 9) does ~9,000 img/s on one thread, above
    # a rank's need. In processes, one per map worker.
    return dataset.batch(cfg.batch_size, drop_remainder=True, per_batch_map=mixer, input_columns=["image", "label"],
                         num_parallel_workers=workers if processes else 1,
                         python_multiprocessing=processes), classes
