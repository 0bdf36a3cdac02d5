"""The networks: the arch table (`registry`), the layers (`layers`), ResNeSt's split attention
(`split_attention`), the ResNet assembly (`resnet`) and BatchNorm folding for inference (`bn_fold`)."""
from .registry import ARCHS, ArchSpec, create_model, list_models, network_from_config
from .resnet import ResNet, count_params

__all__ = ["ARCHS", "ArchSpec", "ResNet", "count_params", "create_model", "list_models", "network_from_config"]
