"""Per-step learning-rate arrays: linear warm-up, then cosine / step / multistep / exponential / constant.

The optimizer indexes the array with its global step, so restoring the step on resume restores the LR position.
Step, multistep and exponential decay count whole epochs from the start of training (warm-up included), as the
ModelZoo and MindCV schedules do; cosine anneals over the steps after warm-up.
"""
from __future__ import annotations

import math
from typing import Sequence

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


def build_lr(cfg, steps_per_epoch: int, group_size: int = 1) -> np.ndarray:
    """float32 array with the LR of every step of the run (cfg.epoch_size * steps_per_epoch entries)."""
    if steps_per_epoch <= 0:
        raise UserError("the training split gives 0 steps per epoch; lower --batch_size or add images")
    total = cfg.epoch_size * steps_per_epoch
    peak = scaled_lr(cfg.lr, cfg.lr_base_batch_size, cfg.batch_size * group_size)
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    values = [lr_at_step(s, steps_per_epoch, total, peak, cfg.lr_scheduler, warmup_steps, cfg.warmup_init_lr,
                         cfg.lr_min, cfg.lr_gamma, cfg.lr_step_size, cfg.lr_epochs) for s in range(total)]
    return np.asarray(values, dtype=np.float32)
