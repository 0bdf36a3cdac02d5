"""The backbone's BatchNorms (alone, + ReLU, or + residual add + ReLU), trained on the CPU backend with one kernel.

On MindSpore 2.8's CPU backend a ResNeXt-50 training step spent ~290 ms in BatchNorm and its gradient and ~150 ms
in ReLU and its gradient (bs 8, 224 px, MindSpore profiler; PyTorch: 213 and 49 ms). `BatchNorm2d` is an
nn.BatchNorm2d (same parameters, names, init and running statistics); `BatchNormReLU` also applies the ReLU which
follows it in the backbone, and `BatchNormAddReLU` ends a residual block, relu(bn(x) + residual). In training on CPU,
csrc/batchnorm.cc computes the forward and the gradient channel by channel, each channel's data read from memory
once, and updates the running statistics in place like MindSpore's BatchNorm (unbiased batch variance, `momentum`
weighting the running value), declared to MindSpore as a write to those parameters. Measured in one process
(ResNeXt-50 train, bs 8, 224 px; benchmarks/RESULTS.md round 5): the fused gradient instead of MindSpore's ReluGrad
+ BatchNormGrad took a step from 1321 to 1230 ms, forward and gradient together from 1331 to 1164 ms. Everywhere
else (eval mode, Ascend/GPU, non-float32 inputs, ZOO_FUSED_BN=0, inside `cpu_ops.native_ops()`, no operator
library) the cells are nn.BatchNorm2d, then nn.ReLU where they apply one. tests/test_cpu_batchnorm.py checks
outputs, gradients and running statistics against them. In inference the BNs are folded away (cpu_ops.epilogue).
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops
from mindspore.common import dtype as mstype
from mindspore.ops import signature as sig

from .library import library_path


class _TrainKernel(ops.Custom):
    """The forward kernel, declared (like MindSpore's BatchNorm) to write the running statistics it is given."""

    __mindspore_signature__ = (sig.make_sig("x"), sig.make_sig("gamma"), sig.make_sig("beta"),
                               sig.make_sig("running_mean", sig.sig_rw.RW_WRITE),
                               sig.make_sig("running_var", sig.sig_rw.RW_WRITE), sig.make_sig("hyper"))


class _ResidualTrainKernel(ops.Custom):
    """The same with the block's shortcut as second input: relu(bn(x) + residual)."""

    __mindspore_signature__ = (sig.make_sig("x"), sig.make_sig("residual"), sig.make_sig("gamma"),
                               sig.make_sig("beta"), sig.make_sig("running_mean", sig.sig_rw.RW_WRITE),
                               sig.make_sig("running_var", sig.sig_rw.RW_WRITE), sig.make_sig("hyper"))


def _grad_kernel(kind: str) -> ops.Custom:
    """The fused gradient: (dy, x, y, gamma, mean, var, hyper) -> dx, [d_residual,] dgamma, dbeta."""
    residual = kind == "AddReLU"

    def shapes(dy, x, y, gamma, *rest):
        return (x, x, gamma, gamma) if residual else (x, gamma, gamma)

    def dtypes(dy, x, y, gamma, *rest):
        return (x,) * (4 if residual else 3)

    return ops.Custom(f"{library_path()}:ZooBatchNorm{kind}Grad", shapes, dtypes, "aot")


def _train_kernel(kind: str) -> ops.Custom:
    """The fused forward of `kind` ("", "ReLU" or "AddReLU") with its fused gradient. Outputs y, batch mean and
    biased batch variance."""
    lib = library_path()
    if lib is None:
        raise RuntimeError("the fused BN kernels are not available here; build BNs with models.layers.batch_norm*")
    grad = _grad_kernel(kind)

    def bprop(x, gamma, beta, running_mean, running_var, hyper, out, dout):
        dx, dgamma, dbeta = grad(dout[0], x, out[0], gamma, out[1], out[2], hyper)
        return (dx, dgamma, dbeta, ops.zeros_like(running_mean), ops.zeros_like(running_var),
                ops.zeros_like(hyper))

    def bprop_residual(x, residual, gamma, beta, running_mean, running_var, hyper, out, dout):
        dx, d_residual, dgamma, dbeta = grad(dout[0], x, out[0], gamma, out[1], out[2], hyper)
        return (dx, d_residual, dgamma, dbeta, ops.zeros_like(running_mean), ops.zeros_like(running_var),
                ops.zeros_like(hyper))

    def shapes(x, *rest):
        return x, rest[-3], rest[-3]  # y like x; batch mean and variance like the running statistics

    def dtypes(x, *rest):
        return x, x, x

    name = f"{lib}:ZooBatchNorm{kind}Train"
    if kind == "AddReLU":
        kernel = _ResidualTrainKernel(name, shapes, dtypes, "aot", bprop=bprop_residual)
    else:
        kernel = _TrainKernel(name, shapes, dtypes, "aot", bprop=bprop)
    kernel.add_prim_attr("side_effect_mem", True)
    return kernel


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d (same parameters, names, init, running statistics) with the fused CPU training kernels when
    `fused`; the subclasses also apply the ReLU that follows it (BatchNormReLU) or the block's residual add and ReLU
    (BatchNormAddReLU).

    `momentum` is the weight of the running value, as for nn.BatchNorm2d (0.9 = PyTorch's momentum 0.1).
    `float32_statistics` (set by AMP O2, common.training.step.apply_amp): a float16 input is normalised in float32
    and the result, and the ReLU / residual add after it, are float16.
    """

    kernel_kind = ""  # which csrc/batchnorm.cc kernels: ZooBatchNorm{kind}Train / ...Grad

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.9, gamma_init="ones",
                 fused: bool = False) -> None:
        super().__init__(channels, eps=eps, momentum=momentum, gamma_init=gamma_init)
        self.fused = fused
        self.float32_statistics = False
        if fused:
            self.train_kernel = _train_kernel(self.kernel_kind)
            self.hyper = ms.Tensor([eps, momentum], mstype.float32)

    def _fused_now(self, x) -> bool:
        return self.fused and self.training and x.dtype == mstype.float32

    def _kernel(self, *maps):
        return self.train_kernel(*maps, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.hyper)[0]

    def _batch_norm(self, x):
        # nn.BatchNorm2d's, also when called from a subclass
        if self.float32_statistics and x.dtype != mstype.float32:
            return ops.cast(super(BatchNorm2d, self).construct(ops.cast(x, mstype.float32)), x.dtype)
        return super(BatchNorm2d, self).construct(x)

    def construct(self, x):
        if self._fused_now(x):
            return self._kernel(x)
        return self._batch_norm(x)


class BatchNormReLU(BatchNorm2d):
    """nn.BatchNorm2d followed by ReLU; one fused CPU kernel each way in training when `fused`."""

    kernel_kind = "ReLU"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.act = nn.ReLU()

    def construct(self, x):
        if self._fused_now(x):
            return self._kernel(x)
        return self.act(self._batch_norm(x))


class BatchNormAddReLU(BatchNorm2d):
    """relu(bn(x) + residual), the end of a residual block: `cell(x, residual)`; fused like BatchNormReLU."""

    kernel_kind = "AddReLU"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.act = nn.ReLU()

    def construct(self, x, residual):
        if self._fused_now(x) and residual.dtype == mstype.float32:
            return self._kernel(x, residual)
        # not in place: an in-place add breaks ONNX export
        return self.act(self._batch_norm(x) + residual)
