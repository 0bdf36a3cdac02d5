"""Grouped 3x3 convolution with a steadier weight gradient on the CPU backend in PyNative mode.

On MindSpore 2.8 CPU, the PyNative weight gradient of a grouped convolution (Conv2DBackpropFilter, group > 1) is
erratic: the same call takes 25 ms or 700-2000 ms at ResNeXt-50 stage-1/2 shapes (REFERENCE §5 saw it ~30x its
forward). This module computes the same gradient as a batched matrix product over im2col columns:

    dW[g] = sum_n dY[n, g] (out/g x L) @ cols[n, g]^T (L x in/g*9)

`ops.unfold` builds the columns and one BatchMatMul (transpose_b, no explicit transposes) does every group and
sample at once; the batch sum is a reduction. Only output maps of 28 x 28 and more take it (where the native kernel
stalls); smaller ones, the forward and the input gradient stay native. The result equals the native gradient
(tests/test_fast_conv.py checks both branches to 1e-4 relative).

Where it applies (decided once per process, see `use_fast_conv`): CPU backend, PyNative mode, grouped (group > 1)
3x3 convs. In graph mode the native kernels are steady and faster than this formulation (measured alternately in
one process, benchmarks/RESULTS.md), and Ascend/GPU always keep nn.Conv2d. ZOO_FAST_CONV=0 turns it off.
"""
from __future__ import annotations

import functools
import os

import mindspore as ms
from mindspore import nn, ops

from .cpu_ops import switch_on

try:  # the native weight-gradient primitive (private module, present 2.2 - 2.8); without it the path stays off
    from mindspore.ops.operations._grad_ops import Conv2DBackpropFilter
except ImportError:  # pragma: no cover - depends on the installed release
    Conv2DBackpropFilter = None

ENV_SWITCH = "ZOO_FAST_CONV"


def fast_conv_applies(device_target: str, mode: str, kernel: int, groups: int, bias: bool = False,
                      switch: str = "1") -> bool:
    """Whether the fast formulation replaces a conv: CPU backend in PyNative mode, grouped 3x3 without bias, and
    the switch not off. In graph mode the native kernels are faster (benchmarks/RESULTS.md), so they stay."""
    return (switch_on(switch) and device_target == "CPU" and mode == "pynative" and kernel == 3 and groups > 1
            and not bias and Conv2DBackpropFilter is not None and hasattr(ops, "unfold"))


@functools.lru_cache(maxsize=None)
def _process_choice() -> tuple:
    """(backend, mode, switch) read once, at the first conv built, so every conv of the process takes one path."""
    mode = "graph" if ms.get_context("mode") == ms.GRAPH_MODE else "pynative"
    return ms.get_context("device_target"), mode, os.environ.get(ENV_SWITCH, "1")


def use_fast_conv(kernel: int, groups: int, bias: bool = False) -> bool:
    """The per-process decision for one conv of the backbone (see the module doc)."""
    device_target, mode, switch = _process_choice()
    return fast_conv_applies(device_target, mode, kernel, groups, bias, switch)


# Output maps at least this large (28 x 28) take the im2col weight gradient; smaller ones keep the native kernel,
# which is steady and about 2x faster there (ResNeXt-50 stages 3-4 at 224 px, bs 8, benchmarks/RESULTS.md).
MIN_IM2COL_SPATIAL = 28 * 28


class _GroupedConvFn(nn.Cell):
    """conv2d(x, w) with a custom backward; `w` comes in as an input so the optimizer sees the owner's Parameter."""

    def __init__(self, out_ch: int, kernel: int, stride: int, padding: int, groups: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.conv = ops.Conv2D(out_ch, kernel, pad_mode="pad", pad=padding, stride=stride, group=groups)
        self.grad_input = ops.Conv2DBackpropInput(out_ch, kernel, pad_mode="pad", pad=padding,
                                                  pad_list=(padding,) * 4, stride=stride, group=groups)
        self.grad_filter = Conv2DBackpropFilter(out_ch, kernel, pad_mode="pad", pad=padding, pad_list=(padding,) * 4,
                                                stride=stride, group=groups)
        self.bmm_nt = ops.BatchMatMul(transpose_b=True)

    def construct(self, x, w):
        return self.conv(x, w)

    def bprop(self, x, w, out, dout):
        """Native input gradient; weight gradient as one batched matmul over im2col columns on large maps."""
        dx = self.grad_input(dout, w, x.shape)
        spatial = dout.shape[2] * dout.shape[3]
        if spatial < MIN_IM2COL_SPATIAL:
            return dx, self.grad_filter(dout, x, w.shape)
        n = x.shape[0]
        c_out, c_in_g, kh, kw = w.shape
        g = self.groups
        cols = ops.unfold(x, (kh, kw), 1, self.padding, self.stride)  # (n, c_in*kh*kw, L), channel-major
        cols = cols.reshape(n * g, c_in_g * kh * kw, spatial)
        dy = dout.reshape(n * g, c_out // g, spatial)
        dw = self.bmm_nt(dy, cols).reshape(n, c_out, c_in_g * kh * kw).sum(axis=0)
        return dx, dw.reshape(c_out, c_in_g, kh, kw).astype(w.dtype)


class FastGroupedConv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, names and init) whose weight gradient takes the fast path above.

    Being an nn.Conv2d keeps checkpoints, the weight converter and isinstance checks unchanged; only the backward
    differs. No bias (the backbone's grouped convs have none).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1,
                 weight_init="normal") -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, pad_mode="pad", padding=padding, group=groups,
                         has_bias=False, weight_init=weight_init)
        self.fn = _GroupedConvFn(out_ch, kernel, stride, padding, groups)

    def construct(self, x):
        return self.fn(x, self.weight)
