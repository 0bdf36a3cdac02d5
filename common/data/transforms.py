"""The per-image transforms of training and evaluation (MindSpore's C++ vision ops)."""
from __future__ import annotations

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def eval_size(image_size: int, crop_pct: float) -> int:
    """Shorter-side resize before the centre crop: 224 / 0.875 = 256."""
    return int(round(image_size / crop_pct))


def interpolation_mode(name: str):
    """MindSpore's Inter for a recipe's `interpolation` name (bilinear or bicubic)."""
    from mindspore.dataset.vision import Inter

    return Inter.BICUBIC if name == "bicubic" else Inter.BILINEAR


def eval_transforms(cfg) -> list:
    """Decode, resize shorter side to image_size / crop_pct, centre crop, normalise, HWC->CHW; with eval_preset or
    eval_backend set, that preset's ops instead (common.data.presets)."""
    from mindspore.dataset import vision

    if cfg.get("eval_preset") or cfg.get("eval_backend"):  # a weight source's own preprocessing (presets.py)
        from .presets import eval_ops, preset_of

        return eval_ops(preset_of(cfg))
    resize = vision.Resize(eval_size(cfg.image_size, cfg.crop_pct), interpolation_mode(cfg.interpolation))
    return [vision.Decode(), resize,
            vision.CenterCrop(cfg.image_size), vision.Normalize(IMAGENET_MEAN, IMAGENET_STD), vision.HWC2CHW()]


def train_transforms(cfg) -> list:
    """Fused decode + RandomResizedCrop, flip, RandAugment or colour jitter, normalise, HWC->CHW: all C++ ops.

    As in timm, colour jitter is left out when a RandAugment policy is set (the policy has its own colour ops).
    Random erasing (re_prob) runs per batch with mixup/cutmix (augment.MixupCutmix): MindSpore's RandomErasing is
    a Python op, which would put the GIL in every image's path. A recipe with that batch map ends here at uint8
    HWC: the batch map normalises in the pass that erases and mixes (one pass over the batch instead of three).
    """
    from mindspore.dataset import vision

    from .augment import has_batch_map, rand_augment

    inter = interpolation_mode(cfg.interpolation)
    ops: list = [vision.RandomCropDecodeResize(cfg.image_size, scale=(cfg.scale_min, 1.0), ratio=(3 / 4, 4 / 3),
                                               interpolation=inter)]
    if cfg.hflip > 0:
        ops.append(vision.RandomHorizontalFlip(cfg.hflip))
    if cfg.get("auto_augment"):
        ops.append(rand_augment(cfg.auto_augment, inter))
    elif cfg.color_jitter > 0:
        j = cfg.color_jitter
        ops.append(vision.RandomColorAdjust(brightness=j, contrast=j, saturation=j))
    if has_batch_map(cfg):
        return ops
    return ops + [vision.Normalize(IMAGENET_MEAN, IMAGENET_STD), vision.HWC2CHW()]
