"""The networks: the arch table (`archs`), building and loading them (`registry`), the layers (`layers`), ResNeSt's
split attention (`split_attention`), the ResNet assembly (`resnet`) and BatchNorm folding for inference (`bn_fold`).

The names below load on first use (PEP 562): `common.models.archs` (the arch names) imports without MindSpore.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_LAZY = {"ARCHS": ".archs", "ArchSpec": ".archs", "list_models": ".archs", "create_model": ".registry",
         "network_from_config": ".registry", "ResNet": ".resnet", "count_params": ".resnet"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
