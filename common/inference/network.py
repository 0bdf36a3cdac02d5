"""The network eval.py, export.py and predict.py run: the checkpoint loaded strictly, BatchNorm folded, eval mode."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Set

from ..config import Option, aliases_of, canonical_key, split_cli
from ..errors import UserError


def command_line_keys(argv: Sequence[str], extra: Optional[Dict[str, Option]] = None) -> Set[str]:
    """Canonical names of the options given on the command line (to tell a user's choice from a default)."""
    return {canonical_key(k, "command line", tuple(extra or ()), aliases_of("eval")) for k, _ in split_cli(argv)
            if k not in ("config_path", "config")}


def checkpoint_num_classes(params: dict) -> Optional[int]:
    """Classifier outputs stored in a checkpoint (the length of fc.bias), or None without one."""
    bias = params.get("fc.bias")
    return int(bias.shape[0]) if bias is not None else None


def load_inference_network(cfg, argv: Sequence[str], extra: Optional[Dict[str, Option]] = None):
    """The network of cfg.arch with cfg.checkpoint_path loaded strictly, in eval mode, BatchNorm folded into the convs
    (common.models.bn_fold: same logits, fewer kernels; eval, predict and export all use it).

    Without --num_classes on the command line the class count is the checkpoint's own (a 10-class fine-tuned
    checkpoint needs no flag); cfg.num_classes is updated to it. With the flag, a mismatch is a clear error.
    """
    from ..models import create_model
    from ..models.bn_fold import fold_batchnorm
    from ..models.registry import padding_of, with_padding
    from ..weights.checkpoint import load_checkpoint_strict, read_checkpoint
    from ..weights.mindspore_import import import_if_foreign

    if not cfg.checkpoint_path:
        raise UserError("--checkpoint_path is not set; pass the .ckpt file to load")
    params, note = import_if_foreign(read_checkpoint(cfg.checkpoint_path), cfg.arch, cfg.checkpoint_path)
    if note:
        print(note, flush=True)
    # the padding the checkpoint records, unless --pool_padding overrides it (to measure what it is worth)
    padding = cfg.get("pool_padding") or padding_of(params)
    params = with_padding(params, padding)
    stored = checkpoint_num_classes(params)
    if stored and "num_classes" not in command_line_keys(argv, extra):
        cfg.num_classes = stored
    elif stored and stored != cfg.num_classes:  # refused before the network is built
        raise UserError(f"checkpoint '{cfg.checkpoint_path}' has {stored} classes but --num_classes "
                        f"{cfg.num_classes} was given; pass --num_classes {stored} or leave it out")
    net = create_model(cfg.arch, num_classes=cfg.num_classes, pool_padding=padding)
    load_checkpoint_strict(net, cfg.checkpoint_path, params)
    return fold_batchnorm(net)
