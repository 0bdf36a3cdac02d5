"""SGD with momentum and parameter groups: weight decay on conv/dense weights only (never BN gamma/beta or biases)."""
from __future__ import annotations

from typing import Dict, List

import numpy as np
from mindspore import Tensor, nn

from ..cpu_ops import use_fused_momentum
from ..cpu_ops.momentum import FusedMomentum


def is_no_decay(param) -> bool:
    """BN gamma/beta and biases (every 1-d parameter) are not decayed, as in the published recipes."""
    name = param.name.rsplit(".", 1)[-1]
    return name in ("gamma", "beta", "bias") or len(param.shape) <= 1


def param_groups(net: nn.Cell, weight_decay: float, decay_bn_and_bias: bool = False) -> List[Dict]:
    """MindSpore group list: decayed params, params without decay, and the net's parameter order."""
    params = net.trainable_params()
    if decay_bn_and_bias:
        return [{"params": params, "weight_decay": weight_decay}, {"order_params": params}]
    decay = [p for p in params if not is_no_decay(p)]
    no_decay = [p for p in params if is_no_decay(p)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": params}]


def create_optimizer(net: nn.Cell, cfg, lr_per_step: np.ndarray) -> nn.Momentum:
    """nn.Momentum over the groups of `param_groups`, with the per-step LR array (indexed by global_step); on the CPU
    backend its one-kernel-per-parameter form (common/cpu_ops/momentum.py), same state and arithmetic."""
    groups = param_groups(net, cfg.weight_decay, cfg.decay_bn_and_bias)
    params = groups[-1]["order_params"]
    head_mult = float(cfg.get("head_lr_mult", 1.0))
    if head_mult != 1.0:
        # the fused CPU update takes one LR for all parameters: a faster head goes through nn.Momentum's groups
        groups = head_lr_groups(groups, lr_per_step, head_mult)
        return nn.Momentum(groups, learning_rate=Tensor(lr_per_step), momentum=cfg.momentum,
                           use_nesterov=cfg.nesterov)
    if use_fused_momentum(params):
        decay_of = {id(p): group["weight_decay"] for group in groups[:-1] for p in group["params"]}
        return FusedMomentum(groups, Tensor(lr_per_step), cfg.momentum, [decay_of[id(p)] for p in params],
                             use_nesterov=cfg.nesterov)
    return nn.Momentum(groups, learning_rate=Tensor(lr_per_step), momentum=cfg.momentum, use_nesterov=cfg.nesterov)


HEAD_PREFIX = "fc."


def head_lr_groups(groups: List[Dict], lr_per_step: np.ndarray, head_mult: float) -> List[Dict]:
    """Split each group of `param_groups` into backbone and head (`fc.*`) parts; the head's part gets the LR array
    times `head_mult` (`--head_lr_mult`, fine-tuning a new classifier faster than the backbone)."""
    out = []
    for group in groups[:-1]:
        body = [p for p in group["params"] if not p.name.startswith(HEAD_PREFIX)]
        head = [p for p in group["params"] if p.name.startswith(HEAD_PREFIX)]
        if body:
            out.append({"params": body, "weight_decay": group["weight_decay"]})
        if head:
            out.append({"params": head, "weight_decay": group["weight_decay"],
                        "lr": Tensor((np.asarray(lr_per_step) * head_mult).astype(np.float32))})
    return out + [groups[-1]]
