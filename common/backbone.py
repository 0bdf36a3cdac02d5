"""One ResNet-family backbone for every arch in the zoo.

ResNeXt (Xie et al., 2017, arXiv:1611.05431) is torchvision's "v1.5" bottleneck with a grouped 3x3 conv: the
stride sits on the 3x3 conv and width = int(planes * base_width / 64) * groups. ResNeSt (Zhang et al., 2020,
arXiv:2004.08955) reuses the same network with three switches, as timm builds `resnest50d` from its ResNet:
a split-attention 3x3 conv (`radix` > 0), a deep 3x3 stem, and average-pool downsampling (avd + avg-down shortcut).

Cell and attribute names follow the PyTorch state-dict keys (torchvision for ResNeXt, timm for ResNeSt), so weight
conversion is a rename of BatchNorm fields and nothing else.

Padding is always explicit (pad_mode="pad" or a zero pad in front of a "valid" pool): MindSpore's "same" pooling
pads bottom/right only and would not match PyTorch's symmetric padding.
"""
from __future__ import annotations

from typing import Optional, Sequence

from mindspore import nn, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import HeNormal

from .fast_conv import FastGroupedConv2d, use_fast_conv
from .fused_attention import RadixPair, use_fused_attention
from .fused_bn import BatchNormAddReLU, BatchNormReLU, FusedBatchNorm2d, use_fused_bn
from .onednn_conv import OneDNNConv2d, use_onednn_conv

# BatchNorm momentum in MindSpore weights the running value: 0.9 here is PyTorch's momentum=0.1.
BN_MOMENTUM = 0.9
BN_EPS = 1e-5


def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """Conv with PyTorch-style symmetric padding kernel // 2 and Kaiming-normal (fan_out, ReLU) weights.

    Grouped convs on the CPU backend run through oneDNN 3.x where it can be built (common/onednn_conv.py); else,
    in PyNative mode, grouped 3x3 convs get common.fast_conv's steadier weight gradient. Parameters and names are
    nn.Conv2d's either way.
    """
    if use_onednn_conv(groups):
        return OneDNNConv2d(in_ch, out_ch, kernel, stride=stride, groups=groups, has_bias=bias,
                            weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))
    if use_fast_conv(kernel, groups, bias):
        return FastGroupedConv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups,
                                 weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, pad_mode="pad", padding=kernel // 2, group=groups,
                     has_bias=bias, weight_init=HeNormal(mode="fan_out", nonlinearity="relu"),
                     bias_init="zeros")


def batch_norm(channels: int) -> FusedBatchNorm2d:
    """BatchNorm (an nn.BatchNorm2d): one fused kernel each way in CPU training (common/fused_bn.py)."""
    return FusedBatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM, fused=use_fused_bn())


def batch_norm_relu(channels: int) -> BatchNormReLU:
    """BatchNorm then ReLU, one fused kernel each way in CPU training (common/fused_bn.py)."""
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


class SplitAttention(nn.Cell):
    """Split-attention 3x3 conv of ResNeSt (radix r, cardinality 1 here but kept general).

    The grouped conv yields r splits; their sum is pooled, squeezed through fc1 (with bias) + BN + ReLU, expanded by
    fc2 (with bias) into r attention maps normalised by a softmax across the radix axis (sigmoid when r == 1), and the
    splits are summed with those weights. Attention width is max(in * r / 4, 32) rounded to a multiple of 8 (timm).
    """

    conv_bn_pairs = (("conv", "bn0"), ("fc1", "bn1"))  # conv -> BN neighbours, for common.bn_fold

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, radix: int = 2) -> None:
        super().__init__()
        self.radix = radix
        self.groups = groups
        mid = out_ch * radix
        attn = make_divisible(in_ch * radix * 0.25)
        self.conv = conv2d(in_ch, mid, 3, stride, groups=groups * radix)
        self.bn0 = batch_norm_relu(mid)
        self.relu = nn.ReLU()
        self.fc1 = conv2d(out_ch, attn, 1, groups=groups, bias=True)
        self.bn1 = batch_norm(attn)
        self.fc2 = conv2d(attn, mid, 1, groups=groups, bias=True)
        self.softmax = nn.Softmax(axis=1)
        self.sigmoid = nn.Sigmoid()
        self.two_halves = radix == 2 and groups == 1  # the faster formulation of `_radix2` applies
        self.radix_pair = RadixPair() if self.two_halves and use_fused_attention() else None

    def construct(self, x):
        x = self.bn0(self.conv(x))
        if self.radix_pair is not None and x.dtype == mstype.float32:  # _radix2 in two CPU kernels
            return self.radix_pair.combine(x, self._first_split_weight(self.radix_pair.gap(x)))
        if self.two_halves:
            return self._radix2(x)
        b, rc, h, w = x.shape
        c = rc // self.radix
        if self.radix > 1:
            splits = x.reshape(b, self.radix, c, h, w)
            gap = splits.sum(axis=1)
        else:
            splits = x
            gap = x
        gap = gap.mean(axis=(2, 3), keep_dims=True)
        attn = self.fc2(self.relu(self.bn1(self.fc1(gap))))
        if self.radix > 1:
            # (b, groups, radix, c/groups) -> softmax over radix -> back to the conv's channel order (radix-major).
            attn = attn.reshape(b, self.groups, self.radix, -1).transpose(0, 2, 1, 3)
            attn = self.softmax(attn).reshape(b, self.radix, c, 1, 1)
            return (splits * attn).sum(axis=1)
        return x * self.sigmoid(attn)

    def _radix2(self, x):
        """radix 2, cardinality 1 (ResNeSt-50): the same sums on the two channel halves, without the 5-d
        reshape + ReduceSum (measured 2x slower on the CPU backend); a softmax over two logits is
        sigmoid(a0 - a1) for the first split and its complement for the second."""
        c = x.shape[1] // 2
        x0 = x[:, :c]
        x1 = x[:, c:]
        w0 = self._first_split_weight((x0 + x1).mean(axis=(2, 3), keep_dims=True))
        return x1 + (x0 - x1) * w0

    def _first_split_weight(self, gap):
        attn = self.fc2(self.relu(self.bn1(self.fc1(gap))))
        c = attn.shape[1] // 2
        return self.sigmoid(attn[:, :c] - attn[:, c:])


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (grouped, or split-attention when radix > 0) -> 1x1, expansion 4, stride on the 3x3 stage."""

    expansion = 4
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: Optional[nn.Cell] = None,
                 groups: int = 1, base_width: int = 64, radix: int = 0, avd: bool = False,
                 zero_init_last: bool = False) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        # avd (ResNeSt): where the block strides, the 3x3 conv runs at stride 1 and a 3x3/s2 average pool follows it.
        avd_stride = stride if (avd and stride > 1) else 0
        conv_stride = 1 if avd_stride else stride
        self.conv1 = conv2d(in_ch, width, 1)
        self.bn1 = batch_norm_relu(width)
        if radix > 0:
            self.conv2 = SplitAttention(width, width, conv_stride, groups=groups, radix=radix)
            self.bn2 = None
        else:
            self.conv2 = conv2d(width, width, 3, conv_stride, groups=groups)
            self.bn2 = batch_norm_relu(width)
        self.avd_last = ZeroPadPool("avg", 3, avd_stride, 1) if avd_stride else None
        self.conv3 = conv2d(width, planes * self.expansion, 1)
        self.bn3 = batch_norm_add_relu(planes * self.expansion, zero_gamma=zero_init_last)
        self.downsample = downsample

    def construct(self, x):
        identity = x
        out = self.bn1(self.conv1(x))  # bn1, bn2 and the stem's bn1 apply the ReLU (batch_norm_relu)
        out = self.conv2(out)
        if self.bn2 is not None:
            out = self.bn2(out)
        if self.avd_last is not None:
            out = self.avd_last(out)
        out = self.conv3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.bn3(out, identity)  # relu(bn3(out) + identity)


class ResNet(nn.Cell):
    """ResNet/ResNeXt/ResNeSt backbone plus a linear head.

    Args:
        layers: blocks per stage, e.g. (3, 4, 6, 3).
        groups, base_width: ResNeXt cardinality and bottleneck width per group.
        radix: 0 for ResNeXt blocks, >= 1 for ResNeSt split-attention blocks.
        deep_stem: three 3x3 convs (stem_width, stem_width, 2 * stem_width) instead of one 7x7.
        avg_down: average-pool then 1x1 conv in the shortcut, instead of a strided 1x1 conv.
        avd: average-pool downsampling inside the block (ResNeSt).
        drop_rate: dropout before the classifier.
        zero_init_last: start each residual branch at zero (gamma of its last BN = 0).
    """

    conv_bn_pairs = (("conv1", "bn1"),)

    def __init__(self, layers: Sequence[int], num_classes: int = 1000, groups: int = 1, base_width: int = 64,
                 radix: int = 0, deep_stem: bool = False, stem_width: int = 32, avg_down: bool = False,
                 avd: bool = False, drop_rate: float = 0.0, zero_init_last: bool = False, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 512 * Bottleneck.expansion
        if deep_stem:
            # Identity where timm has its ReLU: the BN applies it, and the indices (PyTorch's key names) stay
            self.conv1 = nn.SequentialCell([
                conv2d(in_chans, stem_width, 3, 2), batch_norm_relu(stem_width), nn.Identity(),
                conv2d(stem_width, stem_width, 3), batch_norm_relu(stem_width), nn.Identity(),
                conv2d(stem_width, stem_width * 2, 3)])
            in_ch = stem_width * 2
        else:
            self.conv1 = conv2d(in_chans, 64, 7, 2)
            in_ch = 64
        self.bn1 = batch_norm_relu(in_ch)
        self.maxpool = ZeroPadPool("max", 3, 2, 1)
        block_args = dict(groups=groups, base_width=base_width, radix=radix, avd=avd, zero_init_last=zero_init_last)
        stages = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            stages.append(self._make_stage(in_ch, planes, blocks, stride, avg_down, block_args))
            in_ch = planes * Bottleneck.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.dropout = nn.Dropout(p=drop_rate) if drop_rate > 0 else None
        self.fc = nn.Dense(self.num_features, num_classes)

    @staticmethod
    def _make_stage(in_ch: int, planes: int, blocks: int, stride: int, avg_down: bool, block_args: dict):
        out_ch = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or in_ch != out_ch:
            if avg_down:
                pool = AvgDown() if stride > 1 else nn.Identity()
                downsample = nn.SequentialCell([pool, conv2d(in_ch, out_ch, 1), batch_norm(out_ch)])
            else:
                downsample = nn.SequentialCell([conv2d(in_ch, out_ch, 1, stride), batch_norm(out_ch)])
        cells = [Bottleneck(in_ch, planes, stride, downsample, **block_args)]
        cells += [Bottleneck(out_ch, planes, 1, None, **block_args) for _ in range(1, blocks)]
        return nn.SequentialCell(cells)

    def forward_features(self, x):
        """Stem and the four stages: (B, 3, H, W) -> (B, 2048, H/32, W/32)."""
        x = self.maxpool(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x, pre_logits: bool = False):
        """Global average pool, dropout and classifier; `pre_logits` returns the pooled 2048-d features."""
        x = x.mean(axis=(2, 3))
        if pre_logits:
            return x
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head (fine-tuning to another class count); the new head keeps the name `fc`."""
        self.num_classes = num_classes
        self.fc = nn.Dense(self.num_features, num_classes)
        self.fc.weight.name = "fc.weight"
        self.fc.bias.name = "fc.bias"


def count_params(net: nn.Cell) -> int:
    """Trainable parameters (BN running statistics excluded), as REFERENCE §1 counts them."""
    return sum(int(p.size) for p in net.trainable_params())
