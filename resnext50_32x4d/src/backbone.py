"""ResNeXt-50 32x4d network factory: get_network(num_classes=1000, checkpoint=None, drop_rate=0.0, ...)."""
from functools import partial

from common import create_model

ARCH = "resnext50_32x4d"
get_network = partial(create_model, ARCH)
