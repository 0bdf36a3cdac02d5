"""The layers the ResNet family is assembled from: convs and BatchNorms as the backbone builds them, explicit zero
padding, and the pools of the stem, avd and avg-down shortcuts.

Padding is always explicit (pad_mode="pad" or a zero pad in front of a "valid" pool): MindSpore's "same" pooling
pads bottom/right only and would not match PyTorch's symmetric padding. Which kernels a conv or BN runs (MindSpore's
or the zoo's CPU operators) is decided in common.cpu_ops; the layers here only ask.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from mindspore import nn, ops
from mindspore.common.initializer import HeNormal

from ..cpu_ops import use_fused_bn, use_onednn_conv
from ..cpu_ops.batchnorm import BatchNorm2d, BatchNormAddReLU, BatchNormReLU
from ..cpu_ops.conv import OneDNNConv2d

# BatchNorm momentum in MindSpore weights the running value: 0.9 here is PyTorch's momentum=0.1.
BN_MOMENTUM = 0.9
BN_EPS = 1e-5
# False inside weights_from_checkpoint(): convs start at zero instead of drawing Kaiming-normal weights.
_DRAW_CONV_WEIGHTS = True


@contextmanager
def weights_from_checkpoint() -> Iterator[None]:
    """Build convs with zero weights, for a network whose every parameter a strict checkpoint load overwrites next
    (eval, predict, export, the converters' lists of names and shapes): the Kaiming-normal draws are most of the CPU
    time of a build, and of what a user waits before an evaluation starts."""
    global _DRAW_CONV_WEIGHTS
    previous, _DRAW_CONV_WEIGHTS = _DRAW_CONV_WEIGHTS, False
    try:
        yield
    finally:
        _DRAW_CONV_WEIGHTS = previous


def _conv_weight_init():
    return HeNormal(mode="fan_out", nonlinearity="relu") if _DRAW_CONV_WEIGHTS else "zeros"


def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """Conv with PyTorch-style symmetric padding kernel // 2 and Kaiming-normal (fan_out, ReLU) weights.

    Grouped convs on the CPU backend run through oneDNN 3.x where it can be built (common.cpu_ops.conv).
    Parameters and names are nn.Conv2d's either way.
    """
    if use_onednn_conv(groups):
        return OneDNNConv2d(in_ch, out_ch, kernel, stride=stride, groups=groups, has_bias=bias,
                            weight_init=_conv_weight_init())
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, pad_mode="pad", padding=kernel // 2, group=groups,
                     has_bias=bias, weight_init=_conv_weight_init(),
                     bias_init="zeros")


def batch_norm(channels: int) -> BatchNorm2d:
    """BatchNorm (an nn.BatchNorm2d): one fused kernel each way in CPU training (common.cpu_ops.batchnorm)."""
    return BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM, fused=use_fused_bn())


def batch_norm_relu(channels: int) -> BatchNormReLU:
    """BatchNorm then ReLU, one fused kernel each way in CPU training (common.cpu_ops.batchnorm)."""
    return BatchNormReLU(channels, eps=BN_EPS, momentum=BN_MOMENTUM, fused=use_fused_bn())


def batch_norm_add_relu(channels: int, zero_gamma: bool = False) -> BatchNormAddReLU:
    """relu(BatchNorm(x) + residual), the end of a block: one fused kernel each way in CPU training."""
    return BatchNormAddReLU(channels, eps=BN_EPS, momentum=BN_MOMENTUM, gamma_init="zeros" if zero_gamma else "ones",
                            fused=use_fused_bn())


def zero_pad_hw(x, top: int, bottom: int, left: int, right: int):
    """Zero-pad the last two axes of an NCHW tensor by concatenating zero blocks.

    Same values as ops.Pad, measured 3-7x faster on the CPU backend (forward and backward, (8, 64, 112, 112):
    20 / 47 ms against 145 / 164 ms); Concat exports to ONNX where ops.pad (PadV3) does not.
    """
    # Tuples, not a list grown with insert/append: list mutation inside a graph-mode construct made the whole
    # ResNeXt-50 gradient graph fail at batch 4 ("index 4 is out of bounds", MindSpore 2.8).
    b, c, h, w = x.shape
    if top or bottom:
        x = ops.concat(_zero_block((b, c, top, w), x.dtype) + (x,) + _zero_block((b, c, bottom, w), x.dtype), axis=2)
        h += top + bottom
    if left or right:
        x = ops.concat(_zero_block((b, c, h, left), x.dtype) + (x,) + _zero_block((b, c, h, right), x.dtype), axis=3)
    return x


def _zero_block(shape, dtype):
    """(zeros(shape),) or () when the padded side is 0 wide."""
    return (ops.zeros(shape, dtype),) if shape[2] and shape[3] else ()


class ZeroPadPool(nn.Cell):
    """k x k pooling with symmetric zero padding `pad`, as PyTorch's padding=1.

    Zero padding equals PyTorch's -inf padding for max pooling here because every input is post-ReLU (>= 0), and it
    equals count_include_pad=True for average pooling. Built from a zero pad (`zero_pad_hw`) + valid pooling so it
    behaves the same on every supported release and exports to ONNX as plain Concat/Pool nodes.
    """

    def __init__(self, kind: str, kernel: int, stride: int, pad: int) -> None:
        super().__init__()
        pool = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
        self.pad = pad
        self.pool = pool(kernel_size=kernel, stride=stride, pad_mode="valid")

    def construct(self, x):
        if self.pad:
            x = zero_pad_hw(x, self.pad, self.pad, self.pad, self.pad)
        return self.pool(x)


def same_padding(size: int, kernel: int, stride: int) -> tuple:
    """(before, after) padding of MindSpore's pad_mode="same" along one axis: the output is ceil(size / stride) and
    the odd pixel of an odd total goes after (bottom/right), so a 3x3/s2 pool on an even size pads (0, 1)."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePadPool(nn.Cell):
    """k x k pooling as MindSpore's pad_mode="same" computes it (MindCV's and the ModelZoo's stem max pool, MindCV
    ResNeSt's avd average pool), from a zero pad + valid pooling like ZeroPadPool.

    Zero padding is exact for the max pool because its inputs are post-ReLU (>= 0). MindSpore's "same" average pool
    leaves the padding out of the divisor (measured on CPU, MindSpore 2.8: a 3x3/s2 pool of ones is 1 everywhere), so
    the average divides the padded sum by the pooled count of real pixels, as AvgDown does.
    """

    def __init__(self, kind: str, kernel: int, stride: int) -> None:
        super().__init__()
        pool = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
        self.kind, self.kernel, self.stride = kind, kernel, stride
        self.pool = pool(kernel_size=kernel, stride=stride, pad_mode="valid")

    def construct(self, x):
        top, bottom = same_padding(x.shape[2], self.kernel, self.stride)
        left, right = same_padding(x.shape[3], self.kernel, self.stride)
        if not (top or bottom or left or right):
            return self.pool(x)
        padded = self.pool(zero_pad_hw(x, top, bottom, left, right))
        if self.kind == "max":
            return padded
        ones = ops.ones_like(x[:1, :1])
        return padded / self.pool(zero_pad_hw(ones, top, bottom, left, right))


def pool_3x3(kind: str, stride: int, padding: str) -> nn.Cell:
    """The 3x3 pool of the stem (max) or of ResNeSt's avd (avg): padding 'symmetric' (torchvision/timm, pad 1) or
    'same' (MindSpore's pad_mode="same", as MindCV and the ModelZoo build it)."""
    return SamePadPool(kind, 3, stride) if padding == "same" else ZeroPadPool(kind, 3, stride, 1)


class AvgDown(nn.Cell):
    """2x2/stride-2 average pool with ceil_mode=True and count_include_pad=False (timm's avg-down shortcut).

    On odd sizes the last row/column window is partial and averages only the real pixels: sum-pool the zero-padded
    input and divide by the pooled count of real pixels, which is exact and needs no ceil-mode support.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2, pad_mode="valid")

    def construct(self, x):
        h, w = x.shape[2], x.shape[3]
        if h % 2 == 0 and w % 2 == 0:
            return self.pool(x)
        ones = ops.ones_like(x[:1, :1])
        return (self.pool(zero_pad_hw(x, 0, h % 2, 0, w % 2))
                / self.pool(zero_pad_hw(ones, 0, h % 2, 0, w % 2)))


def make_divisible(value: float, divisor: int = 8, min_value: int = 32) -> int:
    """Round to a multiple of `divisor`, at least `min_value`, never below 90% of `value` (timm's rule)."""
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
