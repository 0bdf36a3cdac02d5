"""ResNeSt-50 network: get_network(cfg) builds cfg.arch (resnest50 in this recipe) with the recipe's head,
dropout and zero-init; from Python, common.models.create_model("resnest50") builds it."""
from common.models import network_from_config as get_network  # noqa: F401
