"""Exponential moving average of the weights (`--ema_decay D`), updated inside the training step.

After every optimizer step: ema = D * ema + (1 - D) * weight, for every parameter of the network, BN moving
statistics included (as timm's ModelEma), starting from the weights the run starts with. The averages are
parameters of the step named `ema.<parameter name>`, so train.py's checkpoints hold them and `--resume` restores
them with the rest of the training state; eval.py/export.py/predict.py `--use_ema true` load them in place of the
weights (`ema_params`).
"""
from __future__ import annotations

from typing import Any, Dict

from mindspore import ParameterTuple, Tensor, nn, ops
from mindspore import dtype as mstype

from ..errors import UserError

PREFIX = "ema."

_ema_update = ops.MultitypeFuncGraph("ema_update")


@_ema_update.register("Tensor", "Tensor", "Tensor")
def _ema_update_tensor(decay, average, param):
    value = ops.cast(param, ops.dtype(average))
    return ops.assign(average, average * decay + value * (1.0 - decay))


class WeightEMA(nn.Cell):
    """`ema()` moves the averages one step towards the current parameters of `net`."""

    def __init__(self, net: nn.Cell, decay: float) -> None:
        super().__init__()
        self.decay = Tensor(decay, mstype.float32)
        # float parameters only: an integer marker (models.resnet PADDING_KEY) is a setting, not a weight
        self.weights = ParameterTuple([p for p in net.get_parameters() if p.dtype in (mstype.float16, mstype.float32)])
        self.averages = self.weights.clone(prefix=PREFIX.rstrip("."), init="same")
        for avg in self.averages:
            avg.requires_grad = False
        self.hyper_map = ops.HyperMap()

    def construct(self):
        return self.hyper_map(ops.partial(_ema_update, self.decay), self.averages, self.weights)


def ema_params(params: Dict[str, Any], path: str) -> Dict[str, Any]:
    """The network entries of a checkpoint with its EMA values in place of the weights (`--use_ema true`)."""
    averaged = {k[len(PREFIX):]: v for k, v in params.items() if k.startswith(PREFIX)}
    if not averaged:
        raise UserError(f"checkpoint '{path}' holds no EMA weights (ema.*): it was not written by a train.py run "
                        f"with --ema_decay; leave out --use_ema, or train with --ema_decay 0.9998")
    return {**{k: v for k, v in params.items() if not k.startswith(PREFIX)}, **averaged}
