"""Learning-rate schedules (shared): see common/lr_schedule.py."""
from common.lr_schedule import build_lr, lr_at_step, scaled_lr  # noqa: F401
