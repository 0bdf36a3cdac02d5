"""Exact resume (`--resume PATH|auto`) and fine-tuning starts (`--pretrained PATH`).

A training checkpoint (common.training.hooks.CheckpointSaver) holds the network, the optimizer state (moments, global
step, which positions the per-step LR), the loss-scale state, skipped-step count and epoch_num/step_num. Resuming
loads all of it, so the run continues as if it had never stopped.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from ..compat import load_param_into_net
from ..errors import UserError
from ..fileio import first_line
from ..weights.checkpoint import (
    TRAIN_STATE_PREFIXES,
    entry_shapes,
    list_checkpoints,
    load_checkpoint_strict,
    read_checkpoint,
)
from .preflight import META_KEYS, check_resume_entries, check_resume_path


def find_resume_checkpoint(resume: str, output_dir: str, arch: str
                           ) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """(path, entries) of the checkpoint to resume from: `resume` itself (entries not read yet: None), or with 'auto'
    the newest readable one in `output_dir` with the entries the scan already read, so it is not read twice.

    'auto' with no checkpoint yet means a fresh start (None, None); a newer file that cannot be read (a run killed
    while a non-atomic copy was made, say) is passed over with a warning.
    """
    if not resume:
        return None, None
    if resume != "auto":
        check_resume_path(resume)
        return resume, None
    for _, _, path in reversed(list_checkpoints(output_dir, arch)):
        try:
            params = read_checkpoint(path)
        except UserError as exc:
            print(f"warning: {exc}; trying an older checkpoint", flush=True)
            continue
        if all(k in params for k in META_KEYS):
            return path, params
    return None, None


# Set by this run's config, not the checkpoint: the LR array (its length follows epoch_size, so a run can be
# extended; global_step keeps the position) and the momentum hyper-parameter.
FROM_CONFIG = ("learning_rate", "momentum")


def read_resume_checkpoint(path: str, num_classes: int, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Read `path` (unless its entries are given) and check it is a train.py checkpoint of `num_classes` classes;
    returns its entries.

    train.py calls this before it builds anything, so a wrong --resume file fails in seconds.
    """
    params = read_checkpoint(path) if params is None else params
    check_resume_entries(path, entry_shapes(params), num_classes)
    return params


def restore_training_state(step_cell, net, path: str, steps_per_epoch: int,
                           from_config: Sequence[str] = FROM_CONFIG,
                           params: Optional[Dict[str, Any]] = None) -> Tuple[int, int]:
    """Load network and training state from `path` into `step_cell`, except the names in `from_config`.

    `params` are the checkpoint's entries when already read (by `read_resume_checkpoint`). Returns (epochs done,
    steps done in the next epoch), both counted from 0: a checkpoint written at the end of epoch 3 gives (3, 0).
    """
    if params is None:
        params = read_resume_checkpoint(path, int(net.num_classes))
    saved_spe = int(params["steps_per_epoch"].asnumpy())
    if saved_spe != steps_per_epoch:
        raise UserError(f"checkpoint '{path}' was written with {saved_spe} steps per epoch, this run has "
                        f"{steps_per_epoch} (batch size, data or device count changed); resume with the settings "
                        f"of that run, or fine-tune from it with --pretrained")
    load_checkpoint_strict(net, path, params, ignore_extra_prefixes=TRAIN_STATE_PREFIXES)  # checks names, shapes
    wanted = [p.name for p in step_cell.get_parameters() if p.name not in from_config]
    absent = [n for n in wanted if n not in params]
    if absent:
        raise UserError(f"checkpoint '{path}' lacks training state {', '.join(absent[:3])}: it was written with "
                        f"other optimizer or loss-scale settings; resume with those settings or use --pretrained")
    # Give every parameter of the step in one dict (this run's own value for `from_config`): given a partial dict,
    # MindSpore fills a missing name from a key with the same suffix ('conv1.weight' from 'moments.conv1.weight').
    values = {p.name: (params[p.name] if p.name in wanted else p) for p in step_cell.get_parameters()}
    try:
        not_loaded, _ = load_param_into_net(step_cell, values)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"checkpoint '{path}' does not fit this run's training state ({first_line(exc)}); resume "
                        f"with the settings it was written with, or use --pretrained") from None
    not_loaded = [n for n in not_loaded if n in wanted]
    if not_loaded:
        raise UserError(f"checkpoint '{path}': training state not loaded: {', '.join(not_loaded[:3])}")
    epoch, step = int(params["epoch_num"].asnumpy()), int(params["step_num"].asnumpy())
    if step >= steps_per_epoch:
        return epoch, 0
    return epoch - 1, step


def load_pretrained(net, path: str, num_classes: int, params: Optional[Dict[str, Any]] = None) -> str:
    """Start from the weights in `path` (its entries `params` when already read); a classifier of another class
    count is re-initialised.

    Every other parameter must fit exactly (common.models.load_checkpoint_strict). Returns a line saying what
    was loaded, for the log.
    """
    from ..models.registry import PADDING_KEY, with_padding
    from ..weights.mindspore_import import import_if_foreign

    params = read_checkpoint(path) if params is None else params
    params, converted = import_if_foreign(params, getattr(net, "arch", ""), path)
    params = {k: v for k, v in params.items() if not k.startswith(TRAIN_STATE_PREFIXES) and k not in META_KEYS}
    params = with_padding(params, "same" if hasattr(net, PADDING_KEY) else "symmetric")  # the run's --pool_padding
    head = net.fc
    saved = params.get(head.weight.name)
    note = (converted + "\n" if converted else "") + f"pretrained: loaded '{path}'"
    if saved is not None and tuple(saved.shape) != tuple(head.weight.shape):
        # keep the freshly initialised head: the checkpoint's classes are not this data set's
        params[head.weight.name] = head.weight
        params[head.bias.name] = head.bias
        note += (f"; classifier head re-initialised for num_classes={num_classes} (checkpoint head has "
                 f"{saved.shape[0]} classes)")
    load_checkpoint_strict(net, path, params)
    return note


def checkpoint_padding(params: Dict[str, Any]) -> str:
    """The pool padding a --pretrained/--resume checkpoint was written with: 'same' for a MindCV/ModelZoo file or one
    holding the marker (common.models.resnet.PADDING_KEY), else 'symmetric'. The run builds its network with it."""
    from ..models.registry import padding_of
    from ..weights.mindspore_import import detect_source

    return "same" if detect_source(params) else padding_of(params)
