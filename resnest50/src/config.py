"""ResNeSt-50 recipe: get_config(argv, usage, extra) reads ../default_config.yaml, then the command line."""
from common.config import model_config_loader

get_config = model_config_loader(__file__)
