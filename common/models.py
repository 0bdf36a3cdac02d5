"""Arch registry: every model of the zoo is one row of ARCHS over the shared backbone."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import mindspore as ms

from .backbone import ResNet, count_params
from .compat import load_param_into_net
from .errors import UserError


@dataclass(frozen=True)
class ArchSpec:
    """Factory arguments of one arch plus facts the tests check it against (REFERENCE §1)."""
    layers: Tuple[int, int, int, int]
    kwargs: Dict[str, object] = field(default_factory=dict)
    num_params: int = 0          # trainable params at 1000 classes, exact
    source: str = "torchvision"  # where the PyTorch reference (and its state-dict keys) comes from


# Names a train.py checkpoint holds besides the network (optimizer, loss scale, resume counters); loading the
# network from such a checkpoint ignores them.
TRAIN_STATE_PREFIXES = ("moments.", "global_step", "learning_rate", "momentum", "scale_sense", "skipped_steps",
                        "last_overflow", "current_iterator_step", "last_overflow_iterator_step", "epoch_num",
                        "step_num", "steps_per_epoch")

_RESNEST = dict(radix=2, groups=1, base_width=64, deep_stem=True, stem_width=32, avg_down=True, avd=True)

ARCHS: Dict[str, ArchSpec] = {
    "resnext50_32x4d": ArchSpec((3, 4, 6, 3), dict(groups=32, base_width=4), 25_028_904),
    "resnext101_32x4d": ArchSpec((3, 4, 23, 3), dict(groups=32, base_width=4), 44_177_704),
    "resnext101_32x8d": ArchSpec((3, 4, 23, 3), dict(groups=32, base_width=8), 88_791_336),
    "resnext101_64x4d": ArchSpec((3, 4, 23, 3), dict(groups=64, base_width=4), 83_455_272),
    "resnext152_32x4d": ArchSpec((3, 8, 36, 3), dict(groups=32, base_width=4), 59_951_400),
    "resnext152_64x4d": ArchSpec((3, 8, 36, 3), dict(groups=64, base_width=4), 114_971_944),
    "resnest50": ArchSpec((3, 4, 6, 3), _RESNEST, 27_483_240, source="timm"),
}


def list_models() -> List[str]:
    """Names accepted by `create_model`."""
    return list(ARCHS)


def create_model(arch: str, num_classes: int = 1000, checkpoint: Optional[str] = None, drop_rate: float = 0.0,
                 zero_init_last: bool = False, in_chans: int = 3) -> ResNet:
    """Build `arch` and optionally load a MindSpore checkpoint into it.

    The checkpoint must match the network exactly: any missing or unexpected parameter, or any shape mismatch, is a
    `UserError` naming the parameters (no silent partial load).
    """
    if arch not in ARCHS:
        raise UserError(f"unknown arch '{arch}'; choose one of: {', '.join(ARCHS)}")
    spec = ARCHS[arch]
    net = ResNet(spec.layers, num_classes=num_classes, drop_rate=drop_rate, zero_init_last=zero_init_last,
                 in_chans=in_chans, **spec.kwargs)
    if checkpoint:
        load_checkpoint_strict(net, checkpoint)
    return net


def read_checkpoint(path: str) -> Dict[str, ms.Parameter]:
    """Read a .ckpt, turning unreadable files into one clear UserError."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist; pass the path of a .ckpt file")
    try:
        return ms.load_checkpoint(path)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError with multi-line C++ context
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint '{path}' cannot be read ({first}); it is truncated or not a MindSpore "
                        f"checkpoint: use another file or re-create it") from None


def network_param_names(net: ms.nn.Cell) -> Dict[str, tuple]:
    """Name -> shape of everything a checkpoint of `net` holds (trainable params and BN statistics)."""
    return {p.name: tuple(p.shape) for p in net.get_parameters()}


def load_checkpoint_strict(net: ms.nn.Cell, path: str, params: Optional[dict] = None,
                           ignore_extra_prefixes: Tuple[str, ...] = TRAIN_STATE_PREFIXES) -> None:
    """Load every parameter of `net` from `path`; refuse missing, unexpected or mis-shaped entries.

    Entries whose names start with one of `ignore_extra_prefixes` (by default the optimizer state and training
    counters a train.py checkpoint holds) may be present without being loaded.
    """
    params = read_checkpoint(path) if params is None else params
    expected = network_param_names(net)
    model_params = {k: v for k, v in params.items() if k in expected}
    extra = sorted(k for k in params if k not in expected and not k.startswith(ignore_extra_prefixes))
    missing = sorted(k for k in expected if k not in params)
    shapes = [f"{k} {tuple(params[k].shape)} vs {expected[k]}" for k in model_params
              if tuple(params[k].shape) != expected[k]]
    problems = describe_misfit(missing, extra, shapes)
    if problems:
        raise UserError(f"checkpoint '{path}' does not fit this network: {problems}; check --arch and "
                        f"--num_classes, or use --pretrained to fine-tune with a new head")
    not_loaded, _ = load_param_into_net(net, model_params)
    if not_loaded:
        raise UserError(f"checkpoint '{path}': parameters not loaded: {_head(sorted(not_loaded))}")


def describe_misfit(missing: List[str], unexpected: List[str], reshaped: List[str],
                    missing_label: str = "missing", unexpected_label: str = "unexpected") -> str:
    """'N missing (a, b); M unexpected (c); K of another shape (d ...)', or '' when all three lists are empty."""
    parts = [(missing, missing_label), (unexpected, unexpected_label), (reshaped, "of another shape")]
    return "; ".join(f"{len(items)} {label} ({_head(items)})" for items, label in parts if items)


def _head(items: List[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


__all__ = ["ARCHS", "ArchSpec", "create_model", "list_models", "load_checkpoint_strict", "read_checkpoint",
           "count_params"]
