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

# How the step decides that a gradient overflowed, per backend (`overflow_check`).
CHECK_ALL_FINITE = "all_finite"
CHECK_PROBE = "probe"


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


def overflow_check(device_target: str) -> str:
    """The overflow test of the step on `device_target`.

    Ascend and GPU: `mindspore.amp.all_finite`, MindSpore's documented check. On Atlas training products (910A) the
    float status is in saturation mode (an overflowing fp16 value becomes the largest finite one, a NaN becomes 0), so
    an `isfinite` of the gradients never fires there; all_finite reads the device's overflow status instead.
    CPU: the row-sum probe (`_finite_probe`), the fastest correct test there (IEEE inf/NaN, no saturation).
    """
    return CHECK_PROBE if device_target == "CPU" else CHECK_ALL_FINITE


class _Float32Loss(nn.Cell):
    """The loss on float32 logits whatever precision the network ran in (AMP keeps the loss float32)."""

    def __init__(self, loss: nn.Cell) -> None:
        super().__init__()
        self.loss = loss

    def construct(self, logits, labels):
        return self.loss(ops.cast(logits, mstype.float32), labels)


class TrainStep(nn.TrainOneStepCell):
    """One optimizer step with loss scaling: `step(images, labels) -> loss`.

    The loss is scaled by `scale_sense`, gradients are unscaled and (in data-parallel runs) averaged, and the update
    is skipped when any gradient or the loss is not finite, with a fixed scale as with a dynamic one (ModelZoo
    semantics: an isolated overflow step is skipped, the run goes on). `check` picks the overflow test
    (`overflow_check`); the CPU probe also counts a finite gradient whose entries sum beyond float32's range (3.4e38)
    as an overflow. With `scale_update` (a DynamicLossScaleUpdateCell) the scale halves on overflow and grows after a
    clean window.
    `skipped_steps` counts skipped updates and `last_overflow` flags the latest one (both saved in checkpoints);
    `skipped_steps_in_a_row` is the current run of skipped steps and `skipped_steps_longest_run` the longest since
    the loop last reset it, so the loop can read them every log_interval steps instead of syncing every step.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scale: float,
                 scale_update: nn.Cell = None, check: str = CHECK_PROBE) -> None:
        super().__init__(network, optimizer)
        if check not in (CHECK_PROBE, CHECK_ALL_FINITE):
            raise ValueError(f"unknown overflow check {check!r}")
        self.check = check
        self.hyper_map = ops.HyperMap()
        self.scale_sense = Parameter(Tensor(loss_scale, mstype.float32), name="scale_sense", requires_grad=False)
        self.scale_update = scale_update
        self.skipped_steps = Parameter(Tensor(0, mstype.int32), name="skipped_steps", requires_grad=False)
        self.last_overflow = Parameter(Tensor(False, mstype.bool_), name="last_overflow", requires_grad=False)
        self.skipped_steps_in_a_row = Parameter(Tensor(0, mstype.int32), name="skipped_steps_in_a_row",
                                                requires_grad=False)
        self.skipped_steps_longest_run = Parameter(Tensor(0, mstype.int32), name="skipped_steps_longest_run",
                                                   requires_grad=False)
        self.ema = None  # a common.training.ema.WeightEMA with --ema_decay

    def _overflow(self, grads, loss):
        if self.check == CHECK_ALL_FINITE:
            return ops.logical_not(ms.amp.all_finite(grads + (ops.cast(loss, mstype.float32),)))
        probe = ops.stack(self.hyper_map(_finite_probe, grads)).sum() + ops.cast(loss, mstype.float32)
        return ops.logical_not(ops.isfinite(probe))

    def construct(self, images, labels):
        scale = self.scale_sense
        loss, grads = self.loss_and_grads(images, labels, scale)
        grads = self.hyper_map(ops.partial(_unscale, scale), grads)
        grads = self.grad_reducer(grads)
        overflow = self._overflow(grads, loss)
        if self.scale_update is not None:
            overflow = self.scale_update(self.scale_sense, overflow)
        bad = ops.cast(overflow, mstype.int32)
        run = (self.skipped_steps_in_a_row + bad) * bad
        loss = ops.depend(loss, ops.assign(self.last_overflow, overflow))
        loss = ops.depend(loss, ops.assign_add(self.skipped_steps, bad))
        loss = ops.depend(loss, ops.assign(self.skipped_steps_in_a_row, run))
        loss = ops.depend(loss, ops.assign(self.skipped_steps_longest_run,
                                           ops.maximum(self.skipped_steps_longest_run, run)))
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


def effective_amp_level(cfg, device_target: str) -> str:
    """The AMP level the step applies: cfg.amp_level, except O0 on CPU unless cfg.amp_on_cpu forces it.

    MindSpore 2.8's CPU float16 kernels are slower than its float32 ones, and the recipes' O2 at a loss scale of
    1024 overflowed at step 1 on CPU (issue 14), so CPU runs train float32 by default.
    """
    if device_target == "CPU" and not cfg.get("amp_on_cpu", False):
        return "O0"
    return cfg.amp_level


class _Float16Island(nn.Cell):
    """O1: one convolution or dense layer computed in float16, its output cast back to float32."""

    def __init__(self, cell: nn.Cell) -> None:
        super().__init__(auto_prefix=False)  # the parameters keep their names (checkpoints, resume)
        self.cell = cell.to_float(mstype.float16)

    def construct(self, x):
        return ops.cast(self.cell(x), mstype.float32)


def _amp_o1(net: nn.Cell) -> nn.Cell:
    """Every nn.Conv2d and nn.Dense of `net` (in place) runs float16 between float32 neighbours: MindSpore's O1
    white list at cell level. MindSpore 2.8's O1 rewrites the network's source instead, and that rewrite fails on
    the zoo's BatchNorm subclasses (`BatchNorm2dOpt.__init__() takes 1 positional argument`)."""
    cells = net.name_cells()
    changed = False
    for name, sub in cells.items():
        if sub is net:
            continue
        if isinstance(sub, (nn.Conv2d, nn.Dense)):
            net._cells[name] = _Float16Island(sub)  # noqa: SLF001 - as MindSpore's own AMP swaps cells
            changed = True
        else:
            _amp_o1(sub)
    if isinstance(net, nn.SequentialCell) and changed:
        net.cell_list = list(net.cells())
    return net


def apply_amp(net: nn.Cell, level: str) -> nn.Cell:
    """The network to train at AMP `level` (float16), sharing `net`'s parameters.

    O2/O3: `auto_mixed_precision` casts `net` in place and returns it inside a float32-output wrapper, the cell to
    train; O2 keeps MindSpore's black list (nn.BatchNorm1d/2d/3d, nn.LayerNorm) in float32, except the ReLU and
    residual add the zoo's BN cells apply (`_epilogues_in_float16`). O1: `_amp_o1`.
    """
    if level == "O0":
        return net
    if level == "O1":
        return _amp_o1(net)
    trained = ms.amp.auto_mixed_precision(net, level)
    if level == "O2":
        _epilogues_in_float16(net)
    return trained


def _epilogues_in_float16(cell: nn.Cell) -> bool:
    """Undo O2's float32 wrapper around the zoo's BatchNormReLU / BatchNormAddReLU cells (in place), keeping only
    their normalisation in float32 (`float32_statistics`); True when `cell` changed.

    The black list matches by isinstance, so O2 runs each of these cells wholly in float32: the ReLU and each block's
    residual add too, an extra float32 pass over every activation on Ascend/GPU.
    """
    from ..cpu_ops.batchnorm import BatchNormAddReLU, BatchNormReLU

    changed = False
    for name, sub in cell.name_cells().items():
        inner = getattr(sub, "_backbone", None)  # MindSpore's _OutputTo16 wrapper of a black-listed cell
        if isinstance(inner, (BatchNormReLU, BatchNormAddReLU)):
            inner.to_float(mstype.float16)
            inner.float32_statistics = True
            cell._cells[name] = inner  # noqa: SLF001 - as MindSpore's own AMP swaps cells
            changed = True
        elif sub is not cell:
            _epilogues_in_float16(sub)
    if isinstance(cell, nn.SequentialCell) and changed:
        cell.cell_list = list(cell.cells())
    return changed


def build_train_step(net: nn.Cell, cfg, steps_per_epoch: int, group_size: int = 1, loss: nn.Cell = None,
                     lr=None, device_target: str = "") -> TrainStep:
    """The exact training step train.py runs, independent of data and callbacks (scripts/benchmark.py times it).

    Label-smoothing cross entropy (soft targets accepted, computed in float32), SGD momentum without decay on
    BN/bias, the per-step LR array of the recipe, AMP at `effective_amp_level`, a fixed or dynamic loss scale, and
    the overflow check of the backend (`device_target`, default: the current context's). Puts `net` in training mode.
    """
    device_target = device_target or ms.get_context("device_target")
    if lr is None:
        lr = build_lr(cfg, steps_per_epoch, group_size)
    optimizer = create_optimizer(net, cfg, lr)
    trained = apply_amp(net, effective_amp_level(cfg, device_target))
    loss_net = nn.WithLossCell(trained, _Float32Loss(loss if loss is not None else loss_from_config(cfg)))
    if cfg.loss_scale_type == "dynamic":
        update = nn.DynamicLossScaleUpdateCell(loss_scale_value=cfg.loss_scale, scale_factor=2, scale_window=2000)
    else:
        update = None
    step = _step_class(cfg)(loss_net, optimizer, cfg.loss_scale, update, overflow_check(device_target))
    if cfg.get("ema_decay", 0.0) > 0:
        from .ema import WeightEMA

        step.ema = WeightEMA(net, cfg.ema_decay)
    step.lr_values = lr  # per-step LR array, for the logs
    step.amp_network = trained
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
