"""ResNeXt-152 64x4d as the entry points build it: each module of src/ is one part of it (common/entry.py)."""
from common.entry import ModelFace

from . import backbone, config, crossentropy, dataset, eval_callback, lr_generator

MODEL = ModelFace.from_src(config, backbone, dataset, crossentropy, lr_generator, eval_callback)
