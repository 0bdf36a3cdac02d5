"""ResNeXt-50 32x4d configuration: get_config(argv) resolves default_config.yaml beside train.py plus overrides."""
from common.config import model_config_loader

get_config = model_config_loader(__file__)
