"""ResNeSt's split-attention 3x3 convolution (Zhang et al., 2020, arXiv:2004.08955), as timm builds it."""
from __future__ import annotations

from mindspore import nn
from mindspore.common import dtype as mstype

from ..cpu_ops import use_fused_attention
from ..cpu_ops.split_attention import RadixPair
from .layers import batch_norm, batch_norm_relu, conv2d, make_divisible


class SplitAttention(nn.Cell):
    """Split-attention 3x3 conv of ResNeSt (radix r, cardinality 1 here but kept general).

    The grouped conv yields r splits; their sum is pooled, squeezed through fc1 (with bias) + BN + ReLU, expanded by
    fc2 (with bias) into r attention maps normalised by a softmax across the radix axis (sigmoid when r == 1), and the
    splits are summed with those weights. Attention width is max(in * r / 4, 32) rounded to a multiple of 8 (timm).
    """

    conv_bn_pairs = (("conv", "bn0"), ("fc1", "bn1"))  # conv -> BN neighbours, for common.models.bn_fold

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
