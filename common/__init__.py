"""Shared code of the ResNeXt / ResNeSt model zoo.

    from common import create_model, list_models, predict
    net = create_model("resnext50_32x4d", num_classes=10)

Packages by concern: `models` (the networks), `cpu_ops` (the faster CPU operators and where they apply), `data`
(images in), `training`, `inference` (eval, predict, export), `weights` (checkpoints and importers). The modules at
this level are the infrastructure they share: `config` (every option), `context` (device and ranks), `compat`
(MindSpore releases), `errors`, `fileio` (atomic writes), `entry` (model folders), `modelarts`.

The names below load on first use (PEP 562): importing `common` or its light modules (config, errors, entry) does
not import MindSpore, so `train.py --help` and a wrong option answer in a fraction of a second instead of after
MindSpore's import (seconds here, longer on a CANN image).
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import UserError

# public name -> module that defines it
_LAZY = {"predict": ".inference.predict", "ARCHS": ".models", "ResNet": ".models", "count_params": ".models",
         "create_model": ".models", "list_models": ".models", "load_checkpoint_strict": ".weights.checkpoint"}

__all__ = ["ARCHS", "ResNet", "UserError", "count_params", "create_model", "list_models", "load_checkpoint_strict",
           "predict"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'common' has no attribute '{name}'")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
