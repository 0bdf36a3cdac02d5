"""Weights in and out: the zoo's own checkpoints (`checkpoint`) and importers of other frameworks' files
(`torch_reader` reads PyTorch/safetensors files without PyTorch, `torch_import` maps them onto the network)."""
from .checkpoint import (
                         TRAIN_STATE_PREFIXES,
                         checkpoint_name,
                         list_checkpoints,
                         load_checkpoint_strict,
                         read_checkpoint,
                         save_checkpoint_atomic,
)

__all__ = ["TRAIN_STATE_PREFIXES", "checkpoint_name", "list_checkpoints", "load_checkpoint_strict", "read_checkpoint",
           "save_checkpoint_atomic"]
