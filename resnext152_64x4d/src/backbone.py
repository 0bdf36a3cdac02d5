"""ResNeXt-152 64x4d network: get_network(cfg) builds cfg.arch (resnext152_64x4d in this recipe) with the recipe's head,
dropout and zero-init; from Python, common.models.create_model("resnext152_64x4d") builds it."""
from common.models import network_from_config as get_network  # noqa: F401
