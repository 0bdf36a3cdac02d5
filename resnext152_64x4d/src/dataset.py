"""ResNeXt-152 64x4d data: create_dataset(cfg, split, training, ...) with this recipe's transforms (common.data)."""
from common.data.pipeline import create_dataset  # noqa: F401
