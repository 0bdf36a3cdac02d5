"""The arch table: one row per model of the zoo, without MindSpore, so that command lines (the converter's --arch)
are checked before it loads. common.models.registry builds the networks from it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class ArchSpec:
    """Factory arguments of one arch plus the published facts the tests check it against (docs/DESIGN.md)."""
    layers: Tuple[int, int, int, int]
    kwargs: Dict[str, object] = field(default_factory=dict)
    num_params: int = 0          # trainable params at 1000 classes, exact
    source: str = "torchvision"  # where the PyTorch reference (and its state-dict keys) comes from


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
