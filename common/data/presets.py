"""Eval preprocessing presets: resize, crop, interpolation and antialiasing as each weight source evaluated its weights.

    zoo             this zoo's recipe: shorter side to image_size / crop_pct with MindSpore's (OpenCV) resize
    torchvision_v1  torchvision's classic weights: PIL decode, Resize(256) bilinear (antialiased), CenterCrop(224)
    torchvision_v2  torchvision's IMAGENET1K_V2 weights (resnext50_32x4d): Resize(232) bilinear, CenterCrop(224)
    timm            timm's resnest50d: crop_pct 0.875 (resize floor(224 / 0.875) = 256), bicubic, PIL

MindSpore's Resize of a decoded array does not antialias, so a downscale from a large photograph differs from PIL's
by up to several grey levels (benchmarks/RESULTS.md, "Eval presets"). The torchvision and timm presets therefore
decode and resize with PIL by default (the `pil` backend); `eval_backend` picks the other one for any preset.

A preset is recorded beside a checkpoint (scripts/convert_weights.py) or an exported file (export.py) as
`<name>.preprocess.json`, and eval/predict/export pick it up from there when --eval_preset is not given.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import UserError
from .transforms import IMAGENET_MEAN, IMAGENET_STD, eval_size

PRESET_NAMES = ("zoo", "torchvision_v1", "torchvision_v2", "timm")
BACKENDS = ("pil", "mindspore")
SIDECAR_SUFFIX = ".preprocess.json"


@dataclass(frozen=True)
class Preset:
    """One eval preprocessing: shorter side to `resize`, centre crop `crop` x `crop`, then ImageNet normalisation."""

    name: str
    resize: int
    crop: int
    interpolation: str  # bilinear or bicubic
    antialias: bool  # True only where the resize is PIL's (its filters widen with the scale factor)
    backend: str  # pil or mindspore


# (resize, crop, interpolation, default backend) at the published 224 crop
_PUBLISHED = {"torchvision_v1": (256, 224, "bilinear", "pil"), "torchvision_v2": (232, 224, "bilinear", "pil")}


def resolve_preset(name: str, image_size: int = 224, crop_pct: float = 0.875, interpolation: str = "bilinear",
                   backend: str = "") -> Preset:
    """The preset `name` at crop `image_size` (the published sizes at 224, the resize scaled with the crop
    elsewhere); `crop_pct`/`interpolation` are the recipe's and only used by `zoo`; `backend` '' = the preset's."""
    if name not in PRESET_NAMES:
        raise UserError(f"eval preset {name!r} is unknown; use one of {', '.join(PRESET_NAMES)}")
    if backend and backend not in BACKENDS:
        raise UserError(f"eval backend {backend!r} is unknown; use pil or mindspore")
    if name == "zoo":
        resize, inter, default = eval_size(image_size, crop_pct), interpolation, "mindspore"
    elif name == "timm":  # timm's transforms_imagenet_eval: scale_size = floor(img_size / crop_pct)
        resize, inter, default = math.floor(image_size / 0.875), "bicubic", "pil"
    else:
        size, crop, inter, default = _PUBLISHED[name]
        resize = size if image_size == crop else int(round(size * image_size / crop))
    chosen = backend or default
    return Preset(name, resize, image_size, inter, chosen == "pil", chosen)


def preset_of(cfg) -> Preset:
    """The preset a run's config asks for (eval_preset '' = zoo)."""
    return resolve_preset(cfg.get("eval_preset") or "zoo", cfg.image_size, cfg.crop_pct, cfg.interpolation,
                          cfg.get("eval_backend") or "")


def pil_transform(preset: Preset) -> Callable[[object], np.ndarray]:
    """Encoded bytes (uint8 array), PIL image or HWC uint8 array -> normalised CHW float32, as torchvision's
    Resize(resize), CenterCrop(crop), ToTensor(), Normalize(mean, std) computes it on a PIL image."""
    from PIL import Image

    resample = Image.BICUBIC if preset.interpolation == "bicubic" else Image.BILINEAR
    mean = np.array(IMAGENET_MEAN, np.float32) / 255
    std = np.array(IMAGENET_STD, np.float32) / 255

    def apply(data) -> np.ndarray:
        if isinstance(data, Image.Image):
            image = data
        elif isinstance(data, np.ndarray) and data.ndim == 3:
            image = Image.fromarray(data.astype(np.uint8))
        else:
            image = Image.open(io.BytesIO(np.asarray(data, np.uint8).tobytes()))
        image = image.convert("RGB")
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(preset.resize * long / short)  # torchvision's rounding of the longer side
        size = (preset.resize, new_long) if width <= height else (new_long, preset.resize)
        if size != (width, height):
            image = image.resize(size, resample)
        left = int(round((size[0] - preset.crop) / 2.0))
        top = int(round((size[1] - preset.crop) / 2.0))
        image = image.crop((left, top, left + preset.crop, top + preset.crop))
        pixels = np.asarray(image, np.float32) / 255
        return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))

    return apply


def mindspore_ops(preset: Preset) -> list:
    """MindSpore's C++ decode, shorter-side resize, centre crop, normalise, HWC->CHW for `preset`'s sizes."""
    from mindspore.dataset import vision

    from .transforms import interpolation_mode

    return [vision.Decode(), vision.Resize(preset.resize, interpolation_mode(preset.interpolation)),
            vision.CenterCrop(preset.crop), vision.Normalize(IMAGENET_MEAN, IMAGENET_STD), vision.HWC2CHW()]


def eval_ops(preset: Preset) -> list:
    """The ops a dataset map runs on the encoded image column for `preset`."""
    return [pil_transform(preset)] if preset.backend == "pil" else mindspore_ops(preset)


def sidecar_path(path: str) -> str:
    """`<name>.preprocess.json` beside a checkpoint or exported file `<name>.<suffix>`."""
    return os.path.splitext(os.path.abspath(path))[0] + SIDECAR_SUFFIX


def record(preset: Preset, **extra) -> dict:
    """The preprocessing as a serving stack needs it (mean/std on the 0-1 scale of RGB pixels / 255)."""
    return {**asdict(preset), "eval_preset": preset.name, "mean": [round(m / 255, 6) for m in IMAGENET_MEAN],
            "std": [round(s / 255, 6) for s in IMAGENET_STD], "color": "RGB", "layout": "NCHW",
            "steps": f"decode RGB, resize shorter side to {preset.resize} ({preset.interpolation}, "
                     f"{'antialiased' if preset.antialias else 'no antialiasing'}), centre crop {preset.crop}, "
                     f"divide by 255, subtract mean, divide by std", **extra}


def write_record(path: str, preset: Preset, **extra) -> str:
    """Write `record(preset)` beside `path` atomically; returns the JSON path."""
    from ..fileio import write_json

    return write_json(sidecar_path(path), record(preset, **extra))


def read_record(path: str) -> Optional[dict]:
    """The preprocessing recorded beside `path`, or None; an unreadable or foreign record is a UserError."""
    side = sidecar_path(path)
    if not os.path.isfile(side):
        return None
    try:
        with open(side, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        raise UserError(f"'{side}' is not readable JSON; fix or delete it (it records the eval preset)") from None
    if not isinstance(data, dict) or data.get("eval_preset") not in PRESET_NAMES:
        raise UserError(f"'{side}' records no known eval_preset ({', '.join(PRESET_NAMES)}); fix or delete it")
    return data


def apply_recorded(cfg, path: str, given: set) -> Optional[dict]:
    """Set cfg.eval_preset (and, for an exported file, image_size) from the record beside `path` unless the command
    line chose them (`given`: its option names); returns the record."""
    data = read_record(path)
    if data is None:
        return None
    if "eval_preset" not in given:
        cfg.eval_preset = data["eval_preset"]
    if "image_size" not in given and isinstance(data.get("crop"), int) and data.get("input") == "exported":
        cfg.image_size = data["crop"]
    return data
