"""BatchNorm + ReLU (and BatchNorm + residual add + ReLU), trained on the CPU backend with fused kernels.

On MindSpore 2.8's CPU backend a ResNeXt-50 training step spent ~290 ms in BatchNorm and its gradient and ~150 ms
in ReLU and its gradient (bs 8, 224 px, MindSpore profiler; PyTorch: 213 and 49 ms). `BatchNormReLU` is an
nn.BatchNorm2d (same parameters, names, init and running statistics) that also applies the ReLU which follows it in
the backbone; `BatchNormAddReLU` ends a residual block, relu(bn(x) + residual). In training on CPU, csrc/batchnorm.cc
computes the forward and the gradient channel by channel, each channel's data read from memory once, and updates
the running statistics in place like MindSpore's BatchNorm (unbiased batch variance, `momentum` weighting the
running value), declared to MindSpore as a write to those parameters. Measured in one process (ResNeXt-50 train, bs
8, 224 px; benchmarks/RESULTS.md round 5): the fused gradient instead of MindSpore's ReluGrad + BatchNormGrad took a
step from 1321 to 1230 ms, forward and gradient together from 1331 to 1164 ms. Everywhere else (eval mode, Ascend/GPU,
non-float32 inputs, ZOO_FUSED_BN=0, inside `cpu_ops.native_ops()`, no operator library) the cells are
nn.BatchNorm2d then nn.ReLU. tests/test_fused_bn.py checks outputs, gradients and running statistics against them.
"""
from __future__ import annotations

import os

import mindspore as ms
from mindspore import nn, ops
from mindspore.common import dtype as mstype
from mindspore.ops import signature as sig

from .cpu_ops import library_path, native_only, switch_on

ENV_SWITCH = "ZOO_FUSED_BN"


def fused_bn_applies(device_target: str, switch: str = "1") -> bool:
    """Whether BN + ReLU trains through the custom kernel, library availability aside: CPU and switch on."""
    return switch_on(switch) and device_target == "CPU"


def use_fused_bn() -> bool:
    """The decision for one BN + ReLU of the backbone (see the module doc)."""
    if native_only() or not fused_bn_applies(ms.get_context("device_target"), os.environ.get(ENV_SWITCH, "1")):
        return False
    return library_path() is not None


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


def _grad_kernel(residual: bool) -> ops.Custom:
    """The fused gradient: (dy, x, y, gamma, mean, var, hyper) -> dx, [d_residual,] dgamma, dbeta."""
    name = "ZooBatchNormAddReLUGrad" if residual else "ZooBatchNormReLUGrad"

    def shapes(dy, x, y, gamma, *rest):
        return (x, x, gamma, gamma) if residual else (x, gamma, gamma)

    def dtypes(dy, x, y, gamma, *rest):
        return (x,) * (4 if residual else 3)

    return ops.Custom(f"{library_path()}:{name}", shapes, dtypes, "aot")


def _train_kernel(residual: bool) -> ops.Custom:
    """The fused forward with its fused gradient. Outputs y, batch mean and biased batch variance."""
    lib = library_path()
    if lib is None:
        raise RuntimeError("the fused BN + ReLU is not available here; build it with backbone.batch_norm_relu")
    grad = _grad_kernel(residual)

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

    if residual:
        kernel = _ResidualTrainKernel(f"{lib}:ZooBatchNormAddReLUTrain", shapes, dtypes, "aot", bprop=bprop_residual)
    else:
        kernel = _TrainKernel(f"{lib}:ZooBatchNormReLUTrain", shapes, dtypes, "aot", bprop=bprop)
    kernel.add_prim_attr("side_effect_mem", True)
    return kernel


class _FusedBatchNorm(nn.BatchNorm2d):
    """nn.BatchNorm2d plus the fused CPU training kernels of its subclass (`residual`: relu(bn(x) + residual)).

    `momentum` is the weight of the running value, as for nn.BatchNorm2d (0.9 = PyTorch's momentum 0.1).
    """

    residual = False

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.9, gamma_init="ones",
                 fused: bool = False) -> None:
        super().__init__(channels, eps=eps, momentum=momentum, gamma_init=gamma_init)
        self.act = nn.ReLU()
        self.fused = fused
        if fused:
            self.train_kernel = _train_kernel(self.residual)
            self.hyper = ms.Tensor([eps, momentum], mstype.float32)


class BatchNormReLU(_FusedBatchNorm):
    """nn.BatchNorm2d followed by ReLU; one fused CPU kernel forward in training when `fused`."""

    def construct(self, x):
        if self.fused and self.training and x.dtype == mstype.float32:
            return self.train_kernel(x, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                                     self.hyper)[0]
        return self.act(super().construct(x))


class BatchNormAddReLU(_FusedBatchNorm):
    """relu(bn(x) + residual), the end of a residual block: `cell(x, residual)`; fused like BatchNormReLU."""

    residual = True

    def construct(self, x, residual):
        if self.fused and self.training and x.dtype == mstype.float32 and residual.dtype == mstype.float32:
            return self.train_kernel(x, residual, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                                     self.hyper)[0]
        # not in place: an in-place add breaks ONNX export
        return self.act(super().construct(x) + residual)


class AddReLU(nn.Cell):
    """What a BatchNormAddReLU leaves once common.bn_fold has folded its BN into the conv: relu(x + residual)."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()

    def construct(self, x, residual):
        return self.act(x + residual)
