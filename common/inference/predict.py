"""Top-k classes of one image or a folder of images, from the command line or from a notebook.

    python <model>/predict.py --checkpoint_path CKPT --image cat.jpg [--top 5] [--labels FILE] [--output csv|json]

    from common import create_model, predict
    net = create_model("resnext50_32x4d", checkpoint="resnext50.ckpt")
    predict(net, "cat.jpg")  # {"classes": ["tabby, tabby cat", ...], "scores": [0.81, ...], "labels": [281, ...]}

Images go through the eval transform of the checkpoint's preset (common.data.presets: --eval_preset, else the one
recorded beside the checkpoint by scripts/convert_weights.py, else the zoo's resize, centre crop, normalise), so a
prediction sees exactly what eval.py sees. Class names: --labels (JSON list or one name a line), else
class_names.json beside the checkpoint (written by training on an ImageFolder), else the ImageNet-1k names shipped
in common/data/imagenet1k_classes.txt (WordNet lemmas in the torchvision/timm label order) for 1000 classes.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from typing import Dict, List, Sequence, Union

import numpy as np
from easydict import EasyDict

from ..commands import PREDICT_OPTIONS as OPTIONS
from ..data.folder import IMAGE_EXTENSIONS
from ..data.presets import apply_recorded, eval_ops, preset_of, sidecar_path
from ..errors import UserError
from .class_names import check_names, class_names_for, default_class_names, read_names_file
from .network import check_checkpoint_file, command_line_keys, load_inference_network


def _transform_config(image_size: int, crop_pct: float, interpolation: str, eval_preset: str = "",
                      eval_backend: str = "") -> EasyDict:
    return EasyDict(image_size=image_size, crop_pct=crop_pct, interpolation=interpolation, eval_preset=eval_preset,
                    eval_backend=eval_backend)


def preprocess(image, cfg) -> np.ndarray:
    """One image (file path, PIL image or HWC uint8 RGB array) -> normalised CHW float32, as in eval (cfg's preset)."""
    preset = preset_of(cfg)
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise UserError(f"image '{image}' does not exist; pass an image file or a folder of images")
        data = np.fromfile(image, dtype=np.uint8)
        ops = eval_ops(preset)
    else:
        data = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        if data.ndim != 3 or data.shape[2] != 3:
            raise UserError(f"image array of shape {data.shape} is not HWC RGB; pass an (H, W, 3) uint8 array")
        data = data.astype(np.uint8)
        ops = eval_ops(preset)[1:] if preset.backend == "mindspore" else eval_ops(preset)  # [0] is the decode
    try:
        for op in ops:
            data = op(data)
    except (RuntimeError, ValueError, OSError):  # MindSpore's message is a multi-line pipeline dump; PIL's OSError
        raise UserError(f"image '{image}' cannot be decoded as an image; pass a JPEG, PNG or BMP file") from None
    return np.asarray(data, dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities, computed in float64 for a stable sum of 1."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, k: int, names: Sequence[str]) -> Dict[str, list]:
    """The k most probable classes of one row, most probable first."""
    k = min(k, probs.shape[-1])
    order = np.argsort(-probs, kind="stable")[:k]
    return {"classes": [names[i] for i in order], "scores": [float(probs[i]) for i in order],
            "labels": [int(i) for i in order]}


def _names(labels: Union[None, str, Sequence[str]], num_classes: int) -> List[str]:
    if labels is None:
        return default_class_names(num_classes)
    if isinstance(labels, (str, os.PathLike)):
        return check_names(read_names_file(str(labels)), num_classes, f"'{labels}'")
    return check_names([str(n) for n in labels], num_classes, "labels")


def predict(model, image, top: int = 5, labels: Union[None, str, Sequence[str]] = None, image_size: int = 224,
            crop_pct: float = 0.875, interpolation: str = "bilinear", eval_preset: str = "") -> Dict[str, list]:
    """Top-`top` classes of one image for a notebook: {"classes": names, "scores": probabilities, "labels": ids}.

    `model` is a network from common.create_model (its checkpoint loaded); `image` a file path, PIL image or HWC
    uint8 RGB array; `labels` a list of names or a names file (default: ImageNet-1k names for 1000 classes);
    `eval_preset` the weights' preprocessing (common.data.presets; '' = the zoo's from the three arguments before).
    """
    import mindspore as ms

    names = _names(labels, int(model.num_classes))
    batch = preprocess(image, _transform_config(image_size, crop_pct, interpolation, eval_preset))[None]
    was_training = model.training
    model.set_train(False)
    try:
        logits = model(ms.Tensor(batch)).asnumpy()
    finally:
        model.set_train(was_training)
    return top_k(softmax(logits)[0], top, names)


def list_images(path: str) -> List[str]:
    """`path` itself for a file; for a folder its image files, searched recursively, in sorted order."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise UserError(f"--image '{path}' does not exist; pass an image file or a folder of images")
    found = sorted(os.path.join(root, f) for root, _, files in os.walk(path) for f in files
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
        raise UserError(f"folder '{path}' holds no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...)")
    return found


def format_text(pred: Dict[str, list]) -> List[str]:
    """`tench, Tinca tinca (80.20%)`, one line per class."""
    return [f"{name} ({100 * score:.2f}%)" for name, score in zip(pred["classes"], pred["scores"])]


def write_results(results: List[tuple], output: str, stream=None) -> None:
    """Print (path, prediction) pairs as text lines, CSV rows or one JSON document."""
    stream = stream or sys.stdout
    if output == "json":
        json.dump([{"image": path, "predictions": [{"class": c, "label": i, "probability": s} for c, s, i in
                                                   zip(p["classes"], p["scores"], p["labels"])]}
                   for path, p in results], stream, indent=2)
        stream.write("\n")
    elif output == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["image", "rank", "class", "label", "probability"])
        for path, p in results:
            for rank, (c, s, i) in enumerate(zip(p["classes"], p["scores"], p["labels"]), 1):
                writer.writerow([path, rank, c, i, f"{s:.6f}"])
    else:
        for path, p in results:
            if len(results) > 1:
                stream.write(f"{path}\n")
            stream.write("".join(("  " if len(results) > 1 else "") + line + "\n" for line in format_text(p)))
    stream.flush()


def run(model, cfg, argv: Sequence[str]) -> int:
    """<model>/predict.py: top-k classes of --image (a file or a folder), printed and optionally saved."""
    if not cfg.image:
        raise UserError("--image is not set; pass an image file or a folder of images")
    images = list_images(cfg.image)
    if cfg.checkpoint_path:  # before MindSpore is loaded; without one, load_inference_network says what to pass
        check_checkpoint_file(cfg, argv, OPTIONS)

    import mindspore as ms

    from ..context import init_context

    recorded = apply_recorded(cfg, cfg.checkpoint_path, command_line_keys(argv, OPTIONS)) if cfg.checkpoint_path \
        else None
    init_context(cfg.device_target, cfg.mode, cfg.jit_level, cfg.device_id, distributed=False)
    net = load_inference_network(cfg, argv, OPTIONS)
    if recorded and cfg.eval_preset == recorded["eval_preset"]:
        print(f"preprocessing: preset {cfg.eval_preset} (recorded in {sidecar_path(cfg.checkpoint_path)})",
              file=sys.stderr, flush=True)
    names = class_names_for(cfg.checkpoint_path, cfg.num_classes, cfg.labels)
    batch_size = cfg.eval_batch_size or cfg.batch_size
    results = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = np.stack([preprocess(path, cfg) for path in chunk])
        probs = softmax(net(ms.Tensor(batch)).asnumpy())
        results += [(path, top_k(row, cfg.top, names)) for path, row in zip(chunk, probs)]
    write_results(results, cfg.output)
    return 0
