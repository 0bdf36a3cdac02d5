"""ResNeSt-recipe augmentations: RandAugment, random erasing, and batch-level mixup/cutmix with soft targets."""
from __future__ import annotations

import re
from typing import Optional, Tuple

import numpy as np

from ..errors import UserError
from ..training.loss import smooth_one_hot


def parse_auto_augment(policy: str) -> Tuple[int, int]:
    """'randaug-m9-n2-mstd0.5' -> (num_ops 2, magnitude 9); n defaults to 2.

    MindSpore's RandAugment has no magnitude noise, so an `mstd` part is accepted and not applied.
    """
    parts = policy.split("-")
    if parts[0] != "randaug":
        raise UserError(f"auto_augment='{policy}' is not supported; use a RandAugment policy like "
                        f"'randaug-m9-mstd0.5' or '' for none")
    num_ops, magnitude = 2, 9
    for part in parts[1:]:
        match = re.fullmatch(r"(m|n|mstd|inc|mmax)([0-9.]+)", part)
        if not match:
            raise UserError(f"auto_augment='{policy}': cannot read '{part}' (expected m<int>, n<int>, mstd<float>)")
        key, value = match.groups()
        if key == "m":
            magnitude = int(float(value))
        elif key == "n":
            num_ops = int(float(value))
    if not 0 <= magnitude <= 30:
        raise UserError(f"auto_augment='{policy}': magnitude must be in [0, 30]")
    return num_ops, magnitude


def rand_augment(policy: str, interpolation):
    """mindspore.dataset.vision.RandAugment for `policy` (works on uint8 HWC images, before Normalize)."""
    from mindspore.dataset import vision

    if not hasattr(vision, "RandAugment"):
        raise UserError("this MindSpore release has no vision.RandAugment; upgrade MindSpore or set --auto_augment ''")
    num_ops, magnitude = parse_auto_augment(policy)
    return vision.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=31, interpolation=interpolation)


def random_erasing(prob: float):
    """Random erasing (Zhong et al.) on normalised CHW float images, erased pixels set to zero (the mean)."""
    from mindspore.dataset import vision

    return vision.RandomErasing(prob=prob, scale=(0.02, 1 / 3), ratio=(0.3, 3.3), value=0)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a box covering about 1 - lam of the image, centred uniformly at random."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(y0), int(y1), int(x0), int(x1)


class MixupCutmix:
    """Batch map (images NCHW float32, int labels) -> (mixed images, soft float32 targets), as timm's Mixup.

    Each batch is mixed with its reverse: mixup blends whole images with lam ~ Beta(mixup, mixup); cutmix pastes a
    box with lam ~ Beta(cutmix, cutmix), lam then corrected to the pasted area. With both on, cutmix is chosen with
    `switch_prob`; a batch is left unmixed with probability 1 - `prob`. Targets carry the label smoothing.
    """

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0, prob: float = 1.0,
                 switch_prob: float = 0.5, smoothing: float = 0.0, seed: Optional[int] = None) -> None:
        self.num_classes, self.mixup, self.cutmix = num_classes, mixup, cutmix
        self.prob, self.switch_prob, self.smoothing = prob, switch_prob, smoothing
        self.rng = np.random.default_rng(seed)

    def _lam(self) -> Tuple[float, bool]:
        if self.rng.random() >= self.prob:
            return 1.0, False
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or self.rng.random() < self.switch_prob)
        alpha = self.cutmix if use_cutmix else self.mixup
        return float(self.rng.beta(alpha, alpha)), use_cutmix

    def __call__(self, images: np.ndarray, labels: np.ndarray, batch_info=None):
        images = np.asarray(images, dtype=np.float32)
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        lam, use_cutmix = self._lam()
        if lam < 1.0:
            flipped = images[::-1]
            if use_cutmix:
                y0, y1, x0, x1 = cutmix_box(images.shape[2], images.shape[3], lam, self.rng)
                images = images.copy()
                images[:, :, y0:y1, x0:x1] = flipped[:, :, y0:y1, x0:x1]
                lam = 1.0 - (y1 - y0) * (x1 - x0) / float(images.shape[2] * images.shape[3])
            else:
                images = images * lam + flipped * (1.0 - lam)
        target = smooth_one_hot(labels, self.num_classes, self.smoothing)
        target = lam * target + (1.0 - lam) * target[::-1]
        return images.astype(np.float32), target.astype(np.float32)
