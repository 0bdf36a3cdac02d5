"""ResNeXt-152 64x4d evaluation during training: EvalCallback(net, cfg, dist, saver) writes best.ckpt."""
from common.training.hooks import EvalCallback  # noqa: F401
