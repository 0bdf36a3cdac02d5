"""A model folder as the shared entry points see it: its src/ modules, each one part of the model (ModelZoo layout).

A model folder's train.py, eval.py, export.py and predict.py hand `src.MODEL` (a ModelFace) to the shared command;
the command builds the recipe, the network, the data, the loss, the LR schedule and the evaluation hook through it:

    src/config.py         get_config(argv, usage, extra) -> (argv, cfg): default_config.yaml, then the command line
    src/backbone.py       get_network(cfg) -> the network of cfg.arch as the recipe configures it
    src/dataset.py        create_dataset(cfg, split, training, rank, group_size, seed, source) -> (dataset, classes)
    src/crossentropy.py   get_loss(cfg) -> the recipe's loss cell
    src/lr_generator.py   get_lr(cfg, steps_per_epoch, group_size) -> per-step learning rates
    src/eval_callback.py  EvalCallback(net, cfg, dist, saver) -> evaluation during training

Only src/config.py is imported up front; the other parts, and the command itself (common.commands), are imported
after the command line is resolved and the command's preflight (common.commands) has checked it: they import
MindSpore, and -h/--help, a wrong option or a wrong path must not wait for it.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, List, Optional, Sequence

from .commands import COMMAND_NAMES, COMMANDS, Command
from .errors import cli_main


def _part(module: str, name: str) -> property:
    """A part of the model: `name` from its src/<module>.py, imported when first asked for."""
    def get(face: "ModelFace") -> Callable[..., Any]:
        return getattr(importlib.import_module(f"{face.package}.{module}"), name)
    return property(get, doc=f"src/{module}.py's {name}")


@dataclass(frozen=True)
class ModelFace:
    """The parts of one model folder (see the module doc): `package` is its src package, `model_dir` the folder."""

    model_dir: str
    package: str
    get_config: Callable[..., Any]

    get_network = _part("backbone", "get_network")
    create_dataset = _part("dataset", "create_dataset")
    get_loss = _part("crossentropy", "get_loss")
    get_lr = _part("lr_generator", "get_lr")
    eval_callback = _part("eval_callback", "EvalCallback")

    @classmethod
    def from_package(cls, package: str) -> "ModelFace":
        """The face of the model whose src package is `package` (a model folder's src/__init__.py passes __name__)."""
        get_config = importlib.import_module(f"{package}.config").get_config
        return cls(get_config.model_dir, package, get_config)

    def run(self, command: str, argv: Optional[Sequence[str]] = None) -> int:
        """Run train/eval/export/predict for this model with `argv` (default: sys.argv[1:]); the exit status.

        -h/--help prints the usage and every option with this model's recipe value; a UserError is one line on
        stderr and exit status 2.
        """
        command = COMMAND_NAMES.get(command, command)
        return int(_run_command(self, command, COMMANDS[command], list(sys.argv[1:] if argv is None else argv)) or 0)


@cli_main
def _run_command(model: ModelFace, name: str, command: Command, argv: List[str]) -> int:
    argv, cfg = model.get_config(argv, command.usage, command.options, command=name)
    if cfg is None:  # help was printed
        return 0
    if command.preflight:
        where, function = command.preflight.split(":")
        getattr(importlib.import_module(where), function)(cfg)
    module: ModuleType = importlib.import_module(command.module)
    return module.run(model, cfg, argv)
