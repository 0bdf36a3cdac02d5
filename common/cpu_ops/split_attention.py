"""ResNeSt's radix-2 split attention on the CPU backend: the pooling and the weighted sum of the two splits as
custom kernels (csrc/split_attention.cc), each one pass over the maps forward and backward.

Written with MindSpore's operators, `SplitAttention._radix2` slices the conv's output into its halves x0, x1, pools
x0 + x1 and combines x1 + (x0 - x1) * w; on the CPU backend the slices' gradients, the mean's broadcast gradient
(Tile) and the broadcast product's reductions cost ~180 ms of a 1578 ms ResNeSt-50 training step (bs 8, 224 px;
benchmarks/RESULTS.md round 5). `RadixPair.gap(x)` and `RadixPair.combine(x, w)` compute the same values from the
whole conv output. They apply where fused_bn's kernels do (CPU backend, float32, the operator library available, not
inside `cpu_ops.native_ops()`), switched by ZOO_FUSED_ATTENTION; tests/test_cpu_split_attention.py checks values and
gradients against the native formulation.
"""
from __future__ import annotations

from mindspore import nn, ops

from .library import library_path


def _rows_like(x):
    """(n, 2c, h, w) -> (n, c, 1, 1): the shape of the pooled map and of the weights."""
    return [x[0], x[1] // 2, 1, 1]


class RadixPair(nn.Cell):
    """gap(x) = mean_hw(x0 + x1) and combine(x, w) = x1 + (x0 - x1) * w for x = concat(x0, x1) on the channels."""

    def __init__(self) -> None:
        super().__init__()
        lib = library_path()
        if lib is None:
            raise RuntimeError("the split-attention kernels are not available here; check use_fused_attention()")
        gap_grad = ops.Custom(f"{lib}:ZooRadixGapGrad", lambda dg, x: x, lambda dg, x: x, "aot")
        combine_grad = ops.Custom(f"{lib}:ZooRadixCombineGrad", lambda do, x, w: (x, w),
                                  lambda do, x, w: (x, x), "aot")

        def gap_bprop(x, out, dout):
            return (gap_grad(dout, x),)

        def combine_bprop(x, w, out, dout):
            return combine_grad(dout, x, w)

        self.gap_op = ops.Custom(f"{lib}:ZooRadixGap", _rows_like, lambda x: x, "aot", bprop=gap_bprop)
        self.combine_op = ops.Custom(f"{lib}:ZooRadixCombine", lambda x, w: [x[0], x[1] // 2, x[2], x[3]],
                                     lambda x, w: x, "aot", bprop=combine_bprop)

    def gap(self, x):
        return self.gap_op(x)

    def combine(self, x, w):
        return self.combine_op(x, w)
