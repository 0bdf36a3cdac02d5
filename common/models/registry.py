"""Arch registry: every model of the zoo is one row of ARCHS (common.models.archs) over the shared backbone, built by
`create_model`."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Dict, Optional, Sequence, Tuple

from ..errors import UserError
from ..weights.checkpoint import load_checkpoint_strict
from .archs import ARCHS
from .layers import weights_from_checkpoint
from .resnet import PADDING_KEY, ResNet


def create_model(arch: str, num_classes: int = 1000, checkpoint: Optional[str] = None, drop_rate: float = 0.0,
                 zero_init_last: bool = False, in_chans: int = 3, features_only: bool = False,
                 out_indices: Sequence[int] = (1, 2, 3, 4), pool_padding: str = "symmetric",
                 init_weights: Optional[bool] = None) -> ResNet:
    """Build `arch` and optionally load a MindSpore checkpoint into it.

    The checkpoint must match the network exactly: any missing or unexpected parameter, or any shape mismatch, is a
    `UserError` naming the parameters (no silent partial load). With `features_only` the network returns the maps of
    the stages in `out_indices` (0 stem, 1-4 layer1-4; see `net.feature_info`), and a classifier's checkpoint loads
    into it: the parameters of the head and of unbuilt stages are left out, every other one must fit.
    `pool_padding` 'same' reproduces MindCV's and the ModelZoo's pooling (MindSpore's pad_mode="same"; README
    "Coming from ModelZoo / MindCV"). `init_weights` False leaves the convs at zero instead of drawing their
    Kaiming-normal weights, for a caller that loads every parameter next (default: draw unless `checkpoint`).
    """
    if arch not in ARCHS:
        raise UserError(f"unknown arch '{arch}'; choose one of: {', '.join(ARCHS)}")
    if features_only:
        out_indices = check_out_indices(out_indices)
    spec = ARCHS[arch]
    draw = not checkpoint if init_weights is None else init_weights
    with nullcontext() if draw else weights_from_checkpoint():
        net = ResNet(spec.layers, num_classes=num_classes, drop_rate=drop_rate, zero_init_last=zero_init_last,
                     in_chans=in_chans, features_only=features_only, out_indices=out_indices,
                     pool_padding=pool_padding, **spec.kwargs)
    net.arch = arch  # a foreign --pretrained checkpoint is converted to this arch (common.training.resume)
    if checkpoint and features_only:
        from ..weights.checkpoint import read_checkpoint

        own = {p.name for p in net.get_parameters()}
        params = {k: v for k, v in read_checkpoint(checkpoint).items() if k in own or not _dropped_by_features(k)}
        load_checkpoint_strict(net, checkpoint, params)
    elif checkpoint:
        load_checkpoint_strict(net, checkpoint)
    return net


def check_out_indices(out_indices: Sequence[int]) -> Tuple[int, ...]:
    """Sorted distinct stage indices in 0..4, or a UserError saying what is allowed."""
    indices = tuple(int(i) for i in out_indices)
    if not indices or any(i not in range(5) for i in indices) or len(set(indices)) != len(indices):
        raise UserError(f"out_indices={list(out_indices)} is not valid; give distinct stage indices from 0 (stem, "
                        f"stride 2) to 4 (layer4, stride 32), e.g. 1,2,3,4")
    return tuple(sorted(indices))


def _dropped_by_features(name: str) -> bool:
    """A parameter a features_only network does not build: the head, or a stage after its last map."""
    return name.startswith(("fc.", "layer1.", "layer2.", "layer3.", "layer4."))


def network_from_config(cfg) -> ResNet:
    """The training network of a recipe: cfg.arch with its class count, dropout, zero-init of the last BNs and pool
    padding (cfg.pool_padding; '' = symmetric)."""
    return create_model(cfg.arch, num_classes=cfg.num_classes, drop_rate=cfg.drop_rate,
                        zero_init_last=cfg.zero_init_last, pool_padding=cfg.get("pool_padding") or "symmetric")


def padding_of(params: Dict[str, object]) -> str:
    """The pool padding a checkpoint's entries were written with: 'same' when they hold PADDING_KEY."""
    return "same" if PADDING_KEY in params else "symmetric"


def with_padding(params: Dict[str, object], padding: str) -> Dict[str, object]:
    """`params` fitted to a network built with `padding`: the marker added or dropped (the weights are the same)."""
    import mindspore as ms
    import numpy as np

    out = {k: v for k, v in params.items() if k != PADDING_KEY}
    if padding == "same":
        out[PADDING_KEY] = ms.Parameter(ms.Tensor(np.ones(1, np.int32)), name=PADDING_KEY, requires_grad=False)
    return out
