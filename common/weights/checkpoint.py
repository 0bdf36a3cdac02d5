"""Checkpoints: naming, listing, reading, strict loading into a network, and atomic saving.

Run folders hold `{arch}-{epoch}_{step}.ckpt` (the ModelZoo's names, epoch and step 1-based) and `best.ckpt`. A
train.py checkpoint also holds the training state (TRAIN_STATE_PREFIXES); every loader of a network ignores it.

MindSpore is imported where a checkpoint is read or written: naming, listing, the existence check and the names and
shapes of `read_checkpoint_shapes` serve the checks that run before a command loads MindSpore (common.entry).
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..errors import UserError
from ..fileio import atomic_write, first_line
from .checkpoint_entries import checkpoint_shapes

if TYPE_CHECKING:
    import mindspore as ms

CKPT_NAME = re.compile(r"^(?P<arch>.+)-(?P<epoch>\d+)_(?P<step>\d+)\.ckpt$")

# Names a train.py checkpoint holds besides the network (optimizer, loss scale, resume counters); loading the
# network from such a checkpoint ignores them.
TRAIN_STATE_PREFIXES = ("moments.", "global_step", "learning_rate", "momentum", "scale_sense", "skipped_steps",
                        "last_overflow", "current_iterator_step", "last_overflow_iterator_step", "epoch_num",
                        "step_num", "steps_per_epoch", "ema.")


def checkpoint_name(arch: str, epoch: int, step: int) -> str:
    """The file name of the checkpoint after `step` steps of epoch `epoch` (both 1-based)."""
    return f"{arch}-{epoch}_{step}.ckpt"


def list_checkpoints(folder: str, arch: str) -> List[Tuple[int, int, str]]:
    """(epoch, step, path) of the `{arch}-{epoch}_{step}.ckpt` files in `folder`, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = CKPT_NAME.match(name)
        if match and match.group("arch") == arch:
            found.append((int(match.group("epoch")), int(match.group("step")), os.path.join(folder, name)))
    return sorted(found)


def save_checkpoint_atomic(save_obj: Any, path: str, **kwargs: Any) -> str:
    """`ms.save_checkpoint` through `fileio.atomic_write`: a killed job or a full disk never leaves a half-written
    .ckpt under its final name, and an existing file stays as it was."""
    import mindspore as ms

    return atomic_write(path, lambda tmp: ms.save_checkpoint(save_obj, tmp, **kwargs), "checkpoint",
                        "free disk space or choose a writable --output_dir", suffix=".ckpt",
                        errors=(OSError, RuntimeError, ValueError))


def check_checkpoint_exists(path: str) -> None:
    """A UserError naming `path` when it is not a file."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist; pass the path of a .ckpt file")


def _unreadable(path: str, reason: str) -> UserError:
    return UserError(f"checkpoint '{path}' cannot be read ({reason}); it is truncated or not a MindSpore "
                     f"checkpoint: use another file or re-create it")


def read_checkpoint(path: str) -> Dict[str, ms.Parameter]:
    """Read a .ckpt, turning unreadable files into one clear UserError."""
    import mindspore as ms

    check_checkpoint_exists(path)
    try:
        return ms.load_checkpoint(path)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError with multi-line C++ context
        raise _unreadable(path, first_line(exc)) from None


def read_checkpoint_shapes(path: str) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every entry of the .ckpt at `path`, read without MindSpore (common.weights.checkpoint_entries),
    with read_checkpoint's UserError for a missing or unreadable file."""
    check_checkpoint_exists(path)
    try:
        return checkpoint_shapes(path)
    except OSError as exc:
        raise _unreadable(path, exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise _unreadable(path, str(exc)) from None


def entry_shapes(params: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of checkpoint entries as read_checkpoint loads them: what read_checkpoint_shapes gives."""
    return {name: tuple(value.shape) for name, value in params.items()}


def checkpoint_num_classes(shapes: Dict[str, Tuple[int, ...]]) -> Optional[int]:
    """Classifier outputs of a checkpoint from its names and shapes (the length of fc.bias), or None without one."""
    bias = shapes.get("fc.bias")
    return int(bias[0]) if bias is not None and len(bias) == 1 else None


def network_param_names(net: ms.nn.Cell) -> Dict[str, tuple]:
    """Name -> shape of everything a checkpoint of `net` holds (trainable params and BN statistics)."""
    return {p.name: tuple(p.shape) for p in net.get_parameters()}


def load_checkpoint_strict(net: ms.nn.Cell, path: str, params: Optional[dict] = None,
                           ignore_extra_prefixes: Tuple[str, ...] = TRAIN_STATE_PREFIXES) -> None:
    """Load every parameter of `net` from `path`; refuse missing, unexpected or mis-shaped entries.

    Entries whose names start with one of `ignore_extra_prefixes` (by default the optimizer state and training
    counters a train.py checkpoint holds) may be present without being loaded.
    """
    from ..compat import load_param_into_net

    params = read_checkpoint(path) if params is None else params
    expected = network_param_names(net)
    model_params = {k: v for k, v in params.items() if k in expected}
    extra = sorted(k for k in params if k not in expected and not k.startswith(ignore_extra_prefixes))
    missing = sorted(k for k in expected if k not in params)
    shapes = [f"{k} {tuple(params[k].shape)} vs {expected[k]}" for k in model_params
              if tuple(params[k].shape) != expected[k]]
    problems = describe_misfit(missing, extra, shapes)
    if problems:
        raise UserError(f"checkpoint '{path}' does not fit this network: {problems}; check --arch and "
                        f"--num_classes, or use --pretrained to fine-tune with a new head")
    not_loaded, _ = load_param_into_net(net, model_params)
    if not_loaded:
        raise UserError(f"checkpoint '{path}': parameters not loaded: {head(sorted(not_loaded))}")


def describe_misfit(missing: List[str], unexpected: List[str], reshaped: List[str],
                    missing_label: str = "missing", unexpected_label: str = "unexpected") -> str:
    """'N missing (a, b); M unexpected (c); K of another shape (d ...)', or '' when all three lists are empty."""
    parts = [(missing, missing_label), (unexpected, unexpected_label), (reshaped, "of another shape")]
    return "; ".join(f"{len(items)} {label} ({head(items)})" for items, label in parts if items)


def head(items: List[str], n: int = 5) -> str:
    """The first `n` names and how many more there are, for error messages."""
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n} more)" if len(items) > n else "")
