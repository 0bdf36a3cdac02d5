"""Per-step learning-rate arrays: linear warm-up, then cosine / step / multistep / exponential / constant.

The optimizer indexes the array with its global step, so restoring the step on resume restores the LR position.
Step, multistep and exponential decay count whole epochs from the start of training (warm-up included), as the
ModelZoo and MindCV schedules do; cosine anneals over the steps after warm-up.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

from ..errors import UserError


def scaled_lr(lr: float, lr_base_batch_size: int, global_batch: int) -> float:
    """Linear scaling rule (Goyal et al.): lr * global_batch / lr_base_batch_size, or lr when the base is 0."""
    if lr_base_batch_size <= 0:
        return lr
    return lr * global_batch / lr_base_batch_size


def lr_at_step(step: int, steps_per_epoch: int, total_steps: int, peak: float, scheduler: str,
               warmup_steps: int = 0, warmup_init_lr: float = 0.0, lr_min: float = 0.0, gamma: float = 0.1,
               step_size: int = 30, milestones: Sequence[int] = ()) -> float:
    """LR of one optimizer step (0-based); see the module doc for the formulas."""
    if step < warmup_steps:
        return warmup_init_lr + (peak - warmup_init_lr) * (step + 1) / warmup_steps
    epoch = step // steps_per_epoch
    if scheduler == "cosine_annealing":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return lr_min + (peak - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if scheduler == "step":
        return peak * gamma ** (epoch // step_size)
    if scheduler == "multistep":
        return peak * gamma ** sum(1 for m in milestones if epoch >= m)
    if scheduler == "exponential":
        return peak * gamma ** epoch
    if scheduler == "constant":
        return peak
    raise UserError(f"unknown lr_scheduler '{scheduler}'; use cosine_annealing, step, multistep, exponential "
                    f"or constant")


def warmup_epochs_of(cfg) -> float:
    """The warm-up this run does: cfg.warmup_epochs, shortened to the whole run when it is longer (a 1-epoch smoke
    run of a 5-epoch warm-up recipe warms up over its one epoch instead of being refused)."""
    return min(cfg.warmup_epochs, float(cfg.epoch_size))


def lr_notes(cfg, group_size: int = 1) -> List[str]:
    """Lines for the log: the peak LR after linear scaling, and a shortened warm-up."""
    global_batch = cfg.batch_size * group_size
    peak = scaled_lr(cfg.lr, cfg.lr_base_batch_size, global_batch)
    if cfg.lr_base_batch_size > 0:
        notes = [f"lr: peak {peak:g} = lr {cfg.lr:g} x global batch {global_batch} ({cfg.batch_size} x {group_size} "
                 f"devices) / lr_base_batch_size {cfg.lr_base_batch_size}"]
    else:
        notes = [f"lr: peak {peak:g} (lr_base_batch_size 0: not scaled with the global batch {global_batch})"]
    if warmup_epochs_of(cfg) < cfg.warmup_epochs:
        notes.append(f"note: warmup_epochs={cfg.warmup_epochs:g} is longer than epoch_size={cfg.epoch_size}: the "
                     f"warm-up is shortened to the whole run ({cfg.epoch_size} epoch(s))")
    return notes


def build_lr(cfg, steps_per_epoch: int, group_size: int = 1) -> np.ndarray:
    """float32 array with the LR of every step of the run (cfg.epoch_size * steps_per_epoch entries)."""
    if steps_per_epoch <= 0:
        raise UserError("the training split gives 0 steps per epoch; lower --batch_size or add images")
    total = cfg.epoch_size * steps_per_epoch
    peak = scaled_lr(cfg.lr, cfg.lr_base_batch_size, cfg.batch_size * group_size)
    warmup_steps = int(round(warmup_epochs_of(cfg) * steps_per_epoch))
    values = [lr_at_step(s, steps_per_epoch, total, peak, cfg.lr_scheduler, warmup_steps, cfg.warmup_init_lr,
                         cfg.lr_min, cfg.lr_gamma, cfg.lr_step_size, cfg.lr_epochs) for s in range(total)]
    return np.asarray(values, dtype=np.float32)
