"""ResNeXt-50 32x4d learning rate: get_lr(cfg, steps_per_epoch, group_size), the recipe's per-step schedule."""
from common.training.lr_schedule import build_lr as get_lr  # noqa: F401
