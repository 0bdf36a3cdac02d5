"""Gradient accumulation (`--grad_accum_steps K`): K micro-batches per optimizer step.

The data pipeline delivers batches of K x batch_size (`accumulation_config`), so the steps per epoch, the LR
schedule (and its linear scaling by the global batch), the logs, checkpoint names and exact resume all count
optimizer steps. `AccumulatingStep` splits each batch into K micro-batches of batch_size inside the step, runs
forward and backward on each in turn (each micro-batch normalises with its own BN batch statistics and updates the
moving statistics once, as a run of batch_size does), averages the K gradients and then does what TrainStep does
with them: unscale, all-reduce, overflow check, one optimizer update.
"""
from __future__ import annotations

from easydict import EasyDict
from mindspore import ops

from .step import TrainStep

_scale_grad = ops.MultitypeFuncGraph("scale_grad")


@_scale_grad.register("Number", "Tensor")
def _scale_grad_tensor(factor, grad):
    return grad * factor


def accumulation_config(cfg) -> EasyDict:
    """A copy of `cfg` whose batch_size is the optimizer's batch (K x batch_size); evaluation keeps batch_size."""
    out = EasyDict(dict(cfg))
    k = int(cfg.get("grad_accum_steps", 1))
    if k > 1:
        out.eval_batch_size = cfg.eval_batch_size or cfg.batch_size
        out.batch_size = cfg.batch_size * k
    return out


class AccumulatingStep(TrainStep):
    """TrainStep whose batch is K micro-batches: `step(images, labels)` with K x micro-batch rows."""

    def __init__(self, *args, accum_steps: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.accum_steps = accum_steps

    def _micro(self, images, labels, scale, index: int):
        rows = images.shape[0] // self.accum_steps
        x, y = images[index * rows:(index + 1) * rows], labels[index * rows:(index + 1) * rows]
        loss = self.network(x, y)
        sens = ops.ones_like(loss) * ops.cast(scale, ops.dtype(loss))
        return loss, self.grad(self.network, self.weights)(x, y, sens)

    def loss_and_grads(self, images, labels, scale):
        loss, grads = self._micro(images, labels, scale, 0)
        for index in range(1, self.accum_steps):  # unrolled: accum_steps is a constant of the graph
            more, more_grads = self._micro(images, labels, scale, index)
            loss = loss + more
            grads = self.hyper_map(ops.add, grads, more_grads)
        inv = 1.0 / self.accum_steps
        return loss * inv, self.hyper_map(ops.partial(_scale_grad, inv), grads)
