"""A model folder as the shared entry points see it: its src/ modules, each one part of the model (ModelZoo layout).

A model folder's train.py, eval.py, export.py and predict.py hand `src.MODEL` (a ModelFace) to the shared command;
the command builds the recipe, the network, the data, the loss, the LR schedule and the evaluation hook through it:

    src/config.py         get_config(argv, usage, extra) -> (argv, cfg): default_config.yaml, then the command line
    src/backbone.py       get_network(cfg) -> the network of cfg.arch as the recipe configures it
    src/dataset.py        create_dataset(cfg, split, training, rank, group_size, seed, source) -> (dataset, classes)
    src/crossentropy.py   get_loss(cfg) -> the recipe's loss cell
    src/lr_generator.py   get_lr(cfg, steps_per_epoch, group_size) -> per-step learning rates
    src/eval_callback.py  EvalCallback(net, cfg, dist, saver) -> evaluation during training
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, List, Optional, Sequence

from .errors import cli_main

# command -> module exposing USAGE, OPTIONS (its own options beside common.config's; optional) and
# run(model: ModelFace, cfg, argv) -> exit status
COMMANDS = {"train": "common.training.loop", "eval": "common.inference.evaluate",
            "export": "common.inference.export", "predict": "common.inference.predict"}
# MindCV's name of a command -> the zoo's (validate.py in a model folder runs eval)
COMMAND_NAMES = {"validate": "eval"}


@dataclass(frozen=True)
class ModelFace:
    """The parts of one model folder (see the module doc); `model_dir` is the folder itself."""

    model_dir: str
    get_config: Callable[..., Any]
    get_network: Callable[..., Any]
    create_dataset: Callable[..., Any]
    get_loss: Callable[..., Any]
    get_lr: Callable[..., Any]
    eval_callback: Callable[..., Any]

    @classmethod
    def from_src(cls, config: ModuleType, backbone: ModuleType, dataset: ModuleType, crossentropy: ModuleType,
                 lr_generator: ModuleType, eval_callback: ModuleType) -> "ModelFace":
        """The face of the model whose src/ holds these modules."""
        return cls(config.get_config.model_dir, config.get_config, backbone.get_network, dataset.create_dataset,
                   crossentropy.get_loss, lr_generator.get_lr, eval_callback.EvalCallback)

    def run(self, command: str, argv: Optional[Sequence[str]] = None) -> int:
        """Run train/eval/export/predict for this model with `argv` (default: sys.argv[1:]); the exit status.

        -h/--help prints the usage and every option with this model's recipe value; a UserError is one line on
        stderr and exit status 2.
        """
        command = COMMAND_NAMES.get(command, command)
        return int(_run_command(self, command, importlib.import_module(COMMANDS[command]),
                                list(sys.argv[1:] if argv is None else argv)) or 0)


@cli_main
def _run_command(model: ModelFace, command: str, module: ModuleType, argv: List[str]) -> int:
    argv, cfg = model.get_config(argv, module.USAGE, getattr(module, "OPTIONS", None), command=command)
    if cfg is None:  # help was printed
        return 0
    return module.run(model, cfg, argv)
