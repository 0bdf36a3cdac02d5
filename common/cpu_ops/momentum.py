"""SGD with momentum on the CPU backend: nn.Momentum whose update is one kernel per parameter.

nn.Momentum applies the weight decay as Mul + AddN and then ApplyMomentum: three kernels per parameter, ~61 ms of a
ResNeXt-50 training step at bs 8, 112 px on 2 cores (benchmarks/RESULTS.md round 5). `FusedMomentum` is that
optimizer (same parameters, state, names and checkpoints) with csrc/momentum.cc doing the same arithmetic in one pass:
g = grad + weight_decay * param, moment = momentum * moment + g, param -= lr * moment (Nesterov:
lr * (g + momentum * moment)). It applies on the CPU backend with float32 parameters, the operator library
available, ZOO_FUSED_MOMENTUM not 0, and not inside `cpu_ops.native_ops()`; tests/test_cpu_momentum.py checks
parameters and moments against nn.Momentum over several steps.
"""
from __future__ import annotations

from typing import List

from mindspore import Tensor, nn, ops
from mindspore.common import dtype as mstype
from mindspore.ops import signature as sig

from .library import library_path


class _StepKernel(ops.Custom):
    """The update, declared (like ApplyMomentum) to write the parameter and its moment."""

    __mindspore_signature__ = (sig.make_sig("param", sig.sig_rw.RW_WRITE),
                               sig.make_sig("moment", sig.sig_rw.RW_WRITE), sig.make_sig("grad"),
                               sig.make_sig("lr"), sig.make_sig("hyper"))


_update = ops.MultitypeFuncGraph("fused_momentum_update")


@_update.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _update_one(kernel, lr, hyper, param, moment, grad):
    return kernel(param, moment, grad, lr, hyper)


class FusedMomentum(nn.Momentum):
    """nn.Momentum over `params` (a parameter list or MindSpore's group list) with one update kernel per parameter.

    `weight_decays` gives each trainable parameter's decay in the optimizer's parameter order (0.0 = none).
    """

    def __init__(self, params, learning_rate, momentum: float, weight_decays: List[float],
                 use_nesterov: bool = False) -> None:
        super().__init__(params, learning_rate=learning_rate, momentum=momentum, use_nesterov=use_nesterov)
        if len(weight_decays) != len(self.params):
            raise ValueError(f"{len(weight_decays)} weight decays for {len(self.params)} parameters")
        self.hypers = tuple(Tensor([decay, momentum, float(use_nesterov)], mstype.float32) for decay in weight_decays)
        kernel = _StepKernel(f"{library_path()}:ZooMomentumStep", lambda *shapes: [1], lambda *types: types[0],
                             "aot")
        kernel.add_prim_attr("side_effect_mem", True)
        self.step_kernel = kernel

    def construct(self, gradients):
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        return self.hyper_map(ops.partial(_update, self.step_kernel, lr), self.hypers, self.params, self.moments,
                              gradients)
