"""Grouped convolutions on the CPU backend through oneDNN 3.x, as a MindSpore AOT custom operator.

MindSpore 2.8's CPU convolutions run oneDNN 2.2 `gemm:jit` kernels on plain NCHW memory. ResNeXt's grouped 3x3
convs (4-32 channels a group) suffer most; oneDNN 3.x has direct `jit:avx512_core` kernels for them on blocked
memory. The operator (csrc/onednn_conv.cc, built by common.cpu_ops.library) reorders NCHW tensors into the layout the
primitive picks and back, and splits the batch over the cores. Measured on ResNeXt-50 at bs 8/224 px, A/B in one
process (benchmarks/RESULTS.md, round 4): train step 1630 -> 1449 ms. Dense convs stay native: through oneDNN 3.x,
with the reorders, the whole step was slower (1721-1756 vs 1640 ms; stages 3-4 only: 1520 vs 1470 ms).

Where it applies (decided per conv when it is built, `cpu_ops.use_onednn_conv`): CPU backend, grouped convs
(group > 1), float32 inputs, the operator library available, ZOO_ONEDNN_CONV not 0, and not inside
`cpu_ops.native_ops()` (export uses it: deployment graphs hold only native operators). Anywhere else nn.Conv2d
runs unchanged; Ascend and GPU always keep it. tests/test_cpu_conv.py checks outputs and gradients against the
native operator to 1e-4.
"""
from __future__ import annotations

from mindspore import nn, ops
from mindspore.common import dtype as mstype

from .library import library_path


def _out_size(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class OneDNNConv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, names and init) computed by the oneDNN 3.x operator on float32 inputs.

    Padding is kernel // 2 and dilation 1 (all the backbone uses; the kernels derive the geometry from the shapes).
    Other dtypes (AMP) take the native path inside `construct`, decided when the graph is compiled.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 has_bias: bool = False, weight_init="normal", bias_init="zeros") -> None:
        if stride not in (1, 2):
            raise ValueError(f"OneDNNConv2d supports stride 1 or 2, got {stride}")
        super().__init__(in_ch, out_ch, kernel, stride=stride, pad_mode="pad", padding=kernel // 2, group=groups,
                         has_bias=has_bias, weight_init=weight_init, bias_init=bias_init)
        lib = library_path()
        if lib is None:
            raise RuntimeError("the oneDNN conv operator is not available here; build convs with backbone.conv2d")
        grad_input = ops.Custom(f"{lib}:ZooConvBackwardData", lambda dy, w, x: x, lambda dy, w, x: dy, "aot")
        grad_weight = ops.Custom(f"{lib}:ZooConvBackwardWeights", lambda dy, x, w: w, lambda dy, x, w: dy, "aot")

        def out_shape(x, w, *bias):
            return [x[0], w[0], _out_size(x[2], kernel, stride), _out_size(x[3], kernel, stride)]

        def bprop(x, w, out, dout):
            return grad_input(dout, w, x), grad_weight(dout, x, w)

        def bprop_bias(x, w, b, out, dout):
            return grad_input(dout, w, x), grad_weight(dout, x, w), dout.sum(axis=(0, 2, 3))

        self.forward_op = ops.Custom(f"{lib}:ZooConvForwardStride{stride}", out_shape, lambda x, w, *bias: x, "aot",
                                     bprop=bprop_bias if has_bias else bprop)

    def construct(self, x):
        if x.dtype != mstype.float32:
            return super().construct(x)
        if self.has_bias:
            return self.forward_op(x, self.weight, self.bias)
        return self.forward_op(x, self.weight)
