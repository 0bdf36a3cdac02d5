"""Dispatch for the model folders' thin entry points (train.py, eval.py, export.py, predict.py)."""
from __future__ import annotations

import importlib
import os
import sys
from typing import Optional, Sequence

# command -> module in common/ exposing main(model_dir, argv) -> int
COMMANDS = {"train": "common.train", "eval": "common.evaluate", "export": "common.export",
            "predict": "common.predict"}


def main(command: str, model_dir: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run `command` for the model folder `model_dir` with `argv` (default: sys.argv[1:])."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        module = importlib.import_module(COMMANDS[command])
    except ModuleNotFoundError as exc:
        if exc.name != COMMANDS[command]:
            raise
        print(f"error: '{command}' is not implemented yet in this release", file=sys.stderr)
        return 1
    return int(module.main(os.path.abspath(model_dir), argv) or 0)
