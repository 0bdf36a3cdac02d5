"""Cross entropy with label smoothing, for hard labels (int class ids) and soft targets (mixup/cutmix)."""
from __future__ import annotations

import numpy as np
from mindspore import dtype as mstype
from mindspore import nn, ops


def smooth_one_hot(labels: np.ndarray, num_classes: int, smoothing: float) -> np.ndarray:
    """(1 - smoothing) * one_hot + smoothing / num_classes, as PyTorch's label_smoothing and timm define it."""
    target = np.full((len(labels), num_classes), smoothing / num_classes, dtype=np.float32)
    target[np.arange(len(labels)), labels] += 1.0 - smoothing
    return target


class CrossEntropySmooth(nn.Cell):
    """Mean over the batch of -sum(target * log_softmax(logits)), computed in float32.

    Integer labels of shape (B,) are turned into smoothed one-hot targets; float targets of shape (B, C) (from
    mixup/cutmix, already smoothed there) are used as they are.
    """

    def __init__(self, num_classes: int, smooth_factor: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.on_value = 1.0 - smooth_factor + smooth_factor / num_classes
        self.off_value = smooth_factor / num_classes
        self.log_softmax = nn.LogSoftmax(axis=-1)

    def construct(self, logits, labels):
        logits = ops.cast(logits, mstype.float32)
        if labels.ndim == 1:
            on = ops.fill(mstype.float32, (), self.on_value)
            off = ops.fill(mstype.float32, (), self.off_value)
            target = ops.one_hot(ops.cast(labels, mstype.int32), self.num_classes, on, off)
        else:
            target = ops.cast(labels, mstype.float32)
        return -(target * self.log_softmax(logits)).sum(axis=-1).mean()


def loss_from_config(cfg) -> CrossEntropySmooth:
    """The recipes' loss: label-smoothing cross entropy over cfg.num_classes with cfg.label_smooth_factor."""
    return CrossEntropySmooth(cfg.num_classes, cfg.label_smooth_factor)
