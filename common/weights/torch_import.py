"""Map a torchvision/timm state dict onto the zoo's network.

The backbone's cells carry PyTorch's attribute names (torchvision's for ResNeXt, timm's `resnest50d` for ResNeSt;
docs/DESIGN.md lists them), so the only renames are BatchNorm's fields: weight/bias/running_mean/running_var ->
gamma/beta/moving_mean/moving_variance; `num_batches_tracked` is dropped. Conv and Dense layouts are the same.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from ..errors import UserError
from ..models import create_model
from .checkpoint import describe_misfit, head, network_param_names

# PyTorch BatchNorm field -> MindSpore BatchNorm parameter. Everything else keeps its name.
_BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _target_name(key: str, targets: Dict[str, tuple]) -> str:
    module, _, field = key.rpartition(".")
    if field in _BN_FIELDS and f"{module}.gamma" in targets:
        return f"{module}.{_BN_FIELDS[field]}"
    return key


def convert_state_dict(arch: str, state: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], int]:
    """Return ({mindspore name: float32 array}, num_classes); every source key must be used exactly once.

    The class count is read from `fc.weight`, so a fine-tuned head converts as it is. Keys of the wrong arch show up
    as unused/missing keys or shape mismatches, and all of them are reported in one error.
    """
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if "fc.weight" not in state or np.ndim(state["fc.weight"]) != 2:
        raise UserError(f"the source has no 2-D 'fc.weight' (found keys like: {head(sorted(state))}); it is not a "
                        f"torchvision/timm ResNet-family state dict")
    num_classes = int(state["fc.weight"].shape[0])
    targets = network_param_names(create_model(arch, num_classes=num_classes, init_weights=False))
    out: Dict[str, np.ndarray] = {}
    unused: List[str] = []
    mismatched: Dict[str, str] = {}
    for key, value in state.items():
        name = _target_name(key, targets)
        if name not in targets or name in out:
            unused.append(key)
        elif tuple(value.shape) != targets[name]:
            mismatched[name] = f"{key} {tuple(value.shape)} vs {targets[name]}"
        else:
            out[name] = np.asarray(value, dtype=np.float32)
    missing = sorted(n for n in targets if n not in out and n not in mismatched)
    problems = describe_misfit(missing, sorted(unused), list(mismatched.values()),
                               missing_label=f"{arch} parameter(s) not in the source",
                               unexpected_label=f"source key(s) with no place in {arch}")
    if problems:
        raise UserError(f"the source does not fit --arch {arch}: {problems}")
    return out, num_classes
