"""PyTorch reference models (the real torchvision/timm code) with random weights and random BN statistics, and the
converter that imports their weights."""
import functools
import importlib.util
import os

import torch

from common import ARCHS


def build_reference(arch: str, num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    """torchvision ResNet(Bottleneck, layers, groups, width_per_group) or timm resnest50d, perturbed so that BN
    statistics, BN affine parameters and conv biases all matter for the logits."""
    torch.manual_seed(seed)
    spec = ARCHS[arch]
    if spec.source == "timm":
        import timm

        model = timm.create_model("resnest50d", pretrained=False, num_classes=num_classes)
    else:
        from torchvision.models.resnet import Bottleneck, ResNet

        model = ResNet(Bottleneck, list(spec.layers), num_classes=num_classes, groups=spec.kwargs["groups"],
                       width_per_group=spec.kwargs["base_width"])
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
            elif isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                module.bias.normal_(0, 0.1)
    return model.eval()


@functools.lru_cache(maxsize=None)
def convert_weights():
    """scripts/convert_weights.py as a module, loaded once per process (its top inserts the root into sys.path)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "convert_weights.py")
    spec = importlib.util.spec_from_file_location("convert_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
