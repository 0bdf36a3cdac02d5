"""Shared code of the ResNeXt / ResNeSt model zoo.

    from common import create_model, list_models, predict
    net = create_model("resnext50_32x4d", num_classes=10)

Packages by concern: `models` (the networks), `cpu_ops` (the faster CPU operators and where they apply), `data`
(images in), `training`, `inference` (eval, predict, export), `weights` (checkpoints and importers). The modules at
this level are the infrastructure they share: `config` (every option), `context` (device and ranks), `compat`
(MindSpore releases), `errors`, `fileio` (atomic writes), `entry` (model folders), `modelarts`.
"""
from .errors import UserError
from .inference.predict import predict
from .models import ARCHS, ResNet, count_params, create_model, list_models
from .weights.checkpoint import load_checkpoint_strict

__all__ = ["ARCHS", "ResNet", "UserError", "count_params", "create_model", "list_models", "load_checkpoint_strict",
           "predict"]
