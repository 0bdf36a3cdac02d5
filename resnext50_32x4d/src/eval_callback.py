"""Evaluation during training with best.ckpt (shared): see common/callbacks.py."""
from common.callbacks import CheckpointSaver, EvalCallback  # noqa: F401
