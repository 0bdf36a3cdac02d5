"""Fine-tuning controls: `--freeze_layers N` fixes the stem and the first N stages, BN statistics included.

N = -1 freezes nothing, 0 the stem only, 4 the whole backbone (a linear probe: only the classifier learns), as
MMDetection's `frozen_stages`. A frozen parameter leaves the optimizer (requires_grad False, so it has no moments and
no update) and a frozen BatchNorm normalises with its moving statistics and never updates them, whatever the
training flag says: `use_batch_statistics=False` is read by nn.BatchNorm2d's construct, and the zoo's fused CPU
training kernel is switched off for that cell (it would update the statistics).
"""
from __future__ import annotations

from typing import List, Tuple

from mindspore import nn

from ..errors import UserError

STAGES = ("layer1", "layer2", "layer3", "layer4")


def frozen_prefixes(freeze_layers: int) -> Tuple[str, ...]:
    """Parameter-name prefixes frozen by `--freeze_layers N`: the stem (conv1, bn1) then layer1..layerN."""
    if freeze_layers < -1 or freeze_layers > len(STAGES):
        raise UserError(f"--freeze_layers {freeze_layers} is out of range; use -1 (nothing), 0 (stem) up to 4 "
                        f"(the whole backbone: a linear probe)")
    if freeze_layers < 0:
        return ()
    return ("conv1.", "bn1.") + tuple(f"{s}." for s in STAGES[:freeze_layers])


def freeze_layers(net: nn.Cell, freeze_layers: int) -> List[str]:
    """Freeze the stem and the first `freeze_layers` stages of `net` in place; returns the frozen cell names."""
    prefixes = frozen_prefixes(freeze_layers)
    if not prefixes:
        return []
    roots = [p.rstrip(".") for p in prefixes]
    for param in net.get_parameters():
        if param.name.startswith(prefixes):
            param.requires_grad = False
    for name, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d) and (name in roots or name.startswith(prefixes)):
            cell.use_batch_statistics = False
            if getattr(cell, "fused", False):
                cell.fused = False
    return roots


def trainable_summary(net: nn.Cell, freeze_layers: int) -> str:
    """The log line saying what trains: trainable parameter count out of the total (BN statistics excluded)."""
    trainable = sum(int(p.size) for p in net.trainable_params())
    total = sum(int(p.size) for p in net.get_parameters() if "moving_" not in p.name)
    frozen = ", ".join(p.rstrip(".") for p in frozen_prefixes(freeze_layers)) or "nothing"
    return (f"trainable parameters: {trainable:,} of {total:,} ({100.0 * trainable / max(total, 1):.2f}%); "
            f"frozen (weights and BN statistics): {frozen}")
