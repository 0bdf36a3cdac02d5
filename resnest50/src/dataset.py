"""Data pipelines (shared): see common/dataset.py."""
from common.dataset import create_dataset, eval_transforms, train_transforms  # noqa: F401
