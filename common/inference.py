"""What eval.py, export.py and predict.py share: option handling, the inference network, class names, JSON out."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Set

from .config import Option, canonical_key, split_cli
from .errors import UserError

CLASS_NAMES_FILE = "class_names.json"  # written by training beside its checkpoints: JSON list, label order
IMAGENET_CLASSES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "imagenet1k_classes.txt")


def command_line_keys(argv: Sequence[str], extra: Optional[Dict[str, Option]] = None) -> Set[str]:
    """Canonical names of the options given on the command line (to tell a user's choice from a default)."""
    return {canonical_key(k, "command line", tuple(extra or ())) for k, _ in split_cli(argv) if k != "config_path"}


def checkpoint_num_classes(params: dict) -> Optional[int]:
    """Classifier outputs stored in a checkpoint (the length of fc.bias), or None without one."""
    bias = params.get("fc.bias")
    return int(bias.shape[0]) if bias is not None else None


def load_inference_network(cfg, argv: Sequence[str], extra: Optional[Dict[str, Option]] = None):
    """The network of cfg.arch with cfg.checkpoint_path loaded strictly, in eval mode, BatchNorm folded into the convs
    (common.bn_fold: same logits, fewer kernels; eval, predict and export all use it).

    Without --num_classes on the command line the class count is the checkpoint's own (a 10-class fine-tuned
    checkpoint needs no flag); cfg.num_classes is updated to it. With the flag, a mismatch is a clear error.
    """
    from .bn_fold import fold_batchnorm
    from .models import create_model, load_checkpoint_strict, read_checkpoint

    if not cfg.checkpoint_path:
        raise UserError("--checkpoint_path is not set; pass the .ckpt file to load")
    params = read_checkpoint(cfg.checkpoint_path)
    stored = checkpoint_num_classes(params)
    if stored and "num_classes" not in command_line_keys(argv, extra):
        cfg.num_classes = stored
    elif stored and stored != cfg.num_classes:  # refused before the network is built
        raise UserError(f"checkpoint '{cfg.checkpoint_path}' has {stored} classes but --num_classes "
                        f"{cfg.num_classes} was given; pass --num_classes {stored} or leave it out")
    net = create_model(cfg.arch, num_classes=cfg.num_classes)
    load_checkpoint_strict(net, cfg.checkpoint_path, params)
    return fold_batchnorm(net)


def read_names_file(path: str) -> List[str]:
    """Class names from a JSON list or a text file with one name per line."""
    if not os.path.isfile(path):
        raise UserError(f"labels file '{path}' does not exist; pass a JSON list or a text file, one name a line")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"labels file '{path}' is not valid JSON (line {exc.lineno}); fix it") from None
        if not isinstance(names, list):
            raise UserError(f"labels file '{path}' must hold a JSON list of class names")
        return [str(n) for n in names]
    return [line.strip() for line in text.splitlines() if line.strip()]


def default_class_names(num_classes: int) -> List[str]:
    """ImageNet-1k names for a 1000-class model, else 'class_0', 'class_1', ..."""
    if num_classes == 1000:
        return read_names_file(IMAGENET_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def check_names(names: List[str], num_classes: int, source: str) -> List[str]:
    """`names` when there is one per model output, else an error naming where they came from."""
    if len(names) != num_classes:
        raise UserError(f"{source} lists {len(names)} class names but the model has {num_classes} outputs; "
                        f"pass the matching --labels file")
    return names


def class_names_for(checkpoint_path: str, num_classes: int, labels_file: str = "") -> List[str]:
    """Names in label order: --labels, else class_names.json beside the checkpoint, else `default_class_names`."""
    source = labels_file or os.path.join(os.path.dirname(os.path.abspath(checkpoint_path)), CLASS_NAMES_FILE)
    if labels_file or os.path.isfile(source):
        return check_names(read_names_file(source), num_classes, f"'{source}'")
    return default_class_names(num_classes)


def write_json(path: str, data) -> str:
    """Write JSON through a temporary file and a rename, so a failed write never leaves half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserError(f"could not write '{path}' ({exc.strerror}); choose a writable output folder") from None
    return path
