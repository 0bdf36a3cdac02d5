"""Class names in label order: --labels, class_names.json beside a folder-trained checkpoint, or ImageNet-1k's."""
from __future__ import annotations

import json
import os
from typing import List

from ..errors import UserError

CLASS_NAMES_FILE = "class_names.json"  # written by training beside its checkpoints: JSON list, label order
IMAGENET_CLASSES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                                "imagenet1k_classes.txt")


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
