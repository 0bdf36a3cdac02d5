"""train.py's input checks that need no MindSpore, run by common.entry before the training loop is imported.

Importing MindSpore costs 4-5 s of CPU on this project's test machine, and longer on a CANN image; a wrong path, a
data set that does not fit the recipe or a run folder that would be overwritten is answered before it, in a
fraction of a second. common.training.loop calls the same functions once the ranks are known (a launcher that does
not tell a process its rank leaves the rank-0 checks to it).
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

from .. import modelarts
from ..context import check_distribute, launcher_rank
from ..data.folder import check_data_files, scan_image_folder, split_dir
from ..data.pipeline import train_shard
from ..errors import UserError
from ..fileio import check_writable_folder
from ..weights.checkpoint import checkpoint_num_classes, list_checkpoints, read_checkpoint_shapes


def check_output_dir(folder: str, arch: str, resume: str) -> None:
    """The run folder must be writable, and hold no checkpoints of another run unless resuming.

    Refusing (rather than renaming the new files, as MindSpore's ModelCheckpoint does) keeps the names the
    launchers and users expect and never mixes two runs.
    """
    check_writable_folder(folder, "--output_dir")
    if not resume and list_checkpoints(folder, arch):
        raise UserError(f"--output_dir '{folder}' already holds checkpoints of a run; pass --resume auto to continue "
                        f"it, or choose an empty --output_dir")


def check_classes(cfg, train_classes: List[str]) -> None:
    """num_classes must match the training class folders, and val/ (when present) must have the same classes."""
    if len(train_classes) != cfg.num_classes:
        raise UserError(f"the training data has {len(train_classes)} class folders but num_classes={cfg.num_classes}; "
                        f"pass --num_classes {len(train_classes)} (use --pretrained to fine-tune a model of "
                        f"another class count)")
    val_root = os.path.join(cfg.data_dir, "val")
    if not (cfg.run_eval or os.path.isdir(val_root)):
        return
    _, val_classes = scan_image_folder(split_dir(cfg.data_dir, "val"))
    if val_classes != train_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise UserError(f"train/ and val/ have different class folders (only in train: {only_train[:5]}, only in "
                        f"val: {only_val[:5]}); make both splits hold the same classes")


# The counters CheckpointSaver writes into a train.py checkpoint: a file without them has no training state.
META_KEYS = ("epoch_num", "step_num", "steps_per_epoch")


def check_resume_entries(path: str, shapes: Dict[str, Tuple[int, ...]], num_classes: int) -> None:
    """`path` (its entries' names and shapes) must be a train.py checkpoint of `num_classes` classes."""
    missing_meta = [k for k in META_KEYS if k not in shapes]
    if missing_meta:
        raise UserError(f"checkpoint '{path}' holds no training state ({', '.join(missing_meta)} missing): it is "
                        f"not a train.py checkpoint; start from its weights with --pretrained instead of --resume")
    stored = checkpoint_num_classes(shapes)
    if stored is not None and stored != num_classes:
        raise UserError(f"checkpoint '{path}' has {stored} classes but num_classes={num_classes}; resume "
                        f"with --num_classes {stored}, or fine-tune from it with --pretrained")


def check_resume_path(resume: str) -> None:
    """--resume PATH must name a file ('' and 'auto' name none)."""
    if resume and resume != "auto" and not os.path.isfile(resume):
        raise UserError(f"--resume '{resume}' does not exist; pass a checkpoint written by train.py or "
                        f"--resume auto to continue the newest one in --output_dir")


def prepare_train(cfg) -> None:
    """Copy a ModelArts job's data in, then check what train.py can check before MindSpore: the data against the
    recipe, the checkpoints named, the launch against --distribute, and, where the launcher says this process is
    rank 0 (or alone), the run folder. --strict_data reads this rank's shard here, before the collective starts,
    so a bad file fails in seconds."""
    modelarts.sync_in(cfg)
    samples, classes = scan_image_folder(split_dir(cfg.data_dir, "train"))
    check_classes(cfg, classes)
    check_resume_path(cfg.resume)
    if cfg.resume and cfg.resume != "auto":
        check_resume_entries(cfg.resume, read_checkpoint_shapes(cfg.resume), cfg.num_classes)
    if cfg.pretrained:
        read_checkpoint_shapes(cfg.pretrained)
    check_distribute(cfg.distribute)
    where = launcher_rank()
    if where is None:
        return
    rank, group_size = where
    if rank == 0:
        check_output_dir(cfg.output_dir, cfg.arch, cfg.resume)
    if cfg.strict_data:
        check_data_files(train_shard(samples, rank, group_size, cfg.seed), cfg.reader_threads)
