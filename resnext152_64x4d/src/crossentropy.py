"""Label-smoothing cross entropy (shared): see common/loss.py."""
from common.loss import CrossEntropySmooth  # noqa: F401
