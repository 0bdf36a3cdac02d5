"""Shared code of the ResNeXt / ResNeSt model zoo.

    from common import create_model, list_models
    net = create_model("resnext50_32x4d", num_classes=10)
"""
from .backbone import ResNet, count_params
from .errors import UserError
from .models import ARCHS, create_model, list_models, load_checkpoint_strict
from .predict import predict

__all__ = ["ARCHS", "ResNet", "UserError", "count_params", "create_model", "list_models", "load_checkpoint_strict",
           "predict"]
