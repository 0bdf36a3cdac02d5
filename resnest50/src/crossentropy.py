"""ResNeSt-50 loss: get_loss(cfg), label-smoothing cross entropy with the recipe's factor."""
from common.training.loss import loss_from_config as get_loss  # noqa: F401
