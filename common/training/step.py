"""The training step: loss, loss scaling, gradients, all-reduce, overflow check and the optimizer update in one cell.

`build_train_step` is the exact step train.py's loop runs; scripts/benchmark.py times it and the data-parallel
tests drive it.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore import dtype as mstype

from .loss import loss_from_config
from .lr_schedule import build_lr
from .optim import create_optimizer

_unscale = ops.MultitypeFuncGraph("unscale")
_finite_probe = ops.MultitypeFuncGraph("finite_probe")


@_unscale.register("Tensor", "Tensor")
def _unscale_tensor(scale, grad):
    return grad * ops.cast(ops.reciprocal(scale), ops.dtype(grad))


@_finite_probe.register("Tensor")
def _finite_probe_tensor(grad):
    """A scalar that is NaN or inf when any entry of `grad` is (a NaN or inf propagates through the sums).

    Summed along the last axis of a 2-d view first: MindSpore 2.8's CPU ReduceSum over all axes of a large tensor
    and `isfinite(grad).all()` each cost ~150 ms per ResNeXt-50 step, the row sums ~8 ms
    (benchmarks/RESULTS.md, round 3).
    """
    rows = grad.reshape(1, -1) if grad.ndim <= 1 else grad.reshape(grad.shape[0], -1)
    return ops.cast(rows, mstype.float32).sum(axis=1).sum()


class TrainStep(nn.TrainOneStepCell):
    """One optimizer step with loss scaling: `step(images, labels) -> loss`.

    The loss is scaled by `scale_sense`, gradients are unscaled and (in data-parallel runs) averaged, and the update
    is skipped when any gradient or the loss is not finite. The overflow test is `isfinite` of one sum over all
    gradients and the loss, so it runs on every backend (MindSpore's TrainOneStepWithLossScaleCell uses NPU status ops
    that the CPU graph lacks); a finite gradient whose entries sum beyond float32's range (3.4e38) also counts as an
    overflow. With `scale_update` (a DynamicLossScaleUpdateCell) the scale halves on overflow and grows after a clean
    window.
    `skipped_steps` counts skipped updates and `last_overflow` flags the latest one; both are saved in checkpoints.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scale: float,
                 scale_update: nn.Cell = None) -> None:
        super().__init__(network, optimizer)
        self.hyper_map = ops.HyperMap()
        self.scale_sense = Parameter(Tensor(loss_scale, mstype.float32), name="scale_sense", requires_grad=False)
        self.scale_update = scale_update
        self.skipped_steps = Parameter(Tensor(0, mstype.int32), name="skipped_steps", requires_grad=False)
        self.last_overflow = Parameter(Tensor(False, mstype.bool_), name="last_overflow", requires_grad=False)
        self.ema = None  # a common.training.ema.WeightEMA with --ema_decay

    def construct(self, images, labels):
        scale = self.scale_sense
        loss, grads = self.loss_and_grads(images, labels, scale)
        grads = self.hyper_map(ops.partial(_unscale, scale), grads)
        grads = self.grad_reducer(grads)
        probe = ops.stack(self.hyper_map(_finite_probe, grads)).sum() + ops.cast(loss, mstype.float32)
        overflow = ops.logical_not(ops.isfinite(probe))
        if self.scale_update is not None:
            overflow = self.scale_update(self.scale_sense, overflow)
        loss = ops.depend(loss, ops.assign(self.last_overflow, overflow))
        loss = ops.depend(loss, ops.assign_add(self.skipped_steps, ops.cast(overflow, mstype.int32)))
        if not overflow:
            loss = ops.depend(loss, self.optimizer(grads))
        if self.ema is not None:  # after the update (common.training.ema)
            loss = ops.depend(loss, self.ema())
        return loss

    def loss_and_grads(self, images, labels, scale):
        """Loss and scaled gradients of one batch (common.training.accumulate splits it into micro-batches)."""
        loss = self.network(images, labels)
        sens = ops.ones_like(loss) * ops.cast(scale, ops.dtype(loss))
        return loss, self.grad(self.network, self.weights)(images, labels, sens)

    @property
    def loss_scale(self) -> float:
        return float(self.scale_sense.asnumpy())


def build_train_step(net: nn.Cell, cfg, steps_per_epoch: int, group_size: int = 1, loss: nn.Cell = None,
                     lr=None) -> TrainStep:
    """The exact training step train.py runs, independent of data and callbacks (scripts/benchmark.py times it).

    Label-smoothing cross entropy (soft targets accepted), SGD momentum without decay on BN/bias, the per-step LR
    array of the recipe, AMP at cfg.amp_level, and a fixed or dynamic loss scale. Puts `net` in training mode.
    """
    if lr is None:
        lr = build_lr(cfg, steps_per_epoch, group_size)
    optimizer = create_optimizer(net, cfg, lr)
    if cfg.amp_level != "O0":
        ms.amp.auto_mixed_precision(net, cfg.amp_level)
    loss_net = nn.WithLossCell(net, loss if loss is not None else loss_from_config(cfg))
    if cfg.loss_scale_type == "dynamic":
        update = nn.DynamicLossScaleUpdateCell(loss_scale_value=cfg.loss_scale, scale_factor=2, scale_window=2000)
    else:
        update = None
    step = _step_class(cfg)(loss_net, optimizer, cfg.loss_scale, update)
    if cfg.get("ema_decay", 0.0) > 0:
        from .ema import WeightEMA

        step.ema = WeightEMA(net, cfg.ema_decay)
    step.lr_values = lr  # per-step LR array, for the logs
    step.set_train(True)
    return step


def _step_class(cfg):
    """TrainStep, or with --grad_accum_steps K > 1 the accumulating step (common.training.accumulate)."""
    k = int(cfg.get("grad_accum_steps", 1))
    if k <= 1:
        return TrainStep
    from functools import partial

    from .accumulate import AccumulatingStep

    return partial(AccumulatingStep, accum_steps=k)
