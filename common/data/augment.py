"""ResNeSt-recipe augmentations: RandAugment (timm's, from MindSpore's C++ ops, per image), and per batch random
erasing and mixup/cutmix with soft targets (`MixupCutmix`: one Python call per batch, none per image, drawing the
random numbers; the pixels go through one native pass with normalisation, `batch_kernel`)."""
from __future__ import annotations

import functools
import math
import re
from typing import List, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..training.loss import smooth_one_hot
from .batch_kernel import CUTMIX, MIXUP, NO_MIX, normalize_mix

# timm's RandAugment scale: magnitude m of 10 is the full strength of each op (_LEVEL_DENOM = 10).
MAGNITUDE_MAX = 10
# Draws of the magnitude noise, as copies of the op per magnitude (see `magnitude_weights`).
_NOISE_SLOTS = 24


def parse_auto_augment(policy: str) -> Tuple[int, int, float]:
    """'randaug-m9-n2-mstd0.5' -> (num_ops 2, magnitude 9, magnitude std 0.5), timm's policy string; n defaults to
    2, mstd to 0. Magnitudes run 0-10 as in timm (10 = each op at full strength)."""
    parts = policy.split("-")
    if parts[0] != "randaug":
        raise UserError(f"auto_augment='{policy}' is not supported; use a RandAugment policy like "
                        f"'randaug-m9-mstd0.5' or '' for none")
    num_ops, magnitude, std = 2, 9, 0.0
    for part in parts[1:]:
        match = re.fullmatch(r"(m|n|mstd|inc|mmax)([0-9.]+)", part)
        if not match:
            raise UserError(f"auto_augment='{policy}': cannot read '{part}' (expected m<int>, n<int>, mstd<float>)")
        key, value = match.groups()
        if key == "m":
            magnitude = int(float(value))
        elif key == "n":
            num_ops = int(float(value))
        elif key == "mstd":
            std = float(value)
        else:
            raise UserError(f"auto_augment='{policy}': '{part}' (timm's {key}) is not supported; drop it")
    if not 0 <= magnitude <= MAGNITUDE_MAX:
        raise UserError(f"auto_augment='{policy}': magnitude must be in [0, {MAGNITUDE_MAX}] (timm's scale)")
    if num_ops < 1:
        raise UserError(f"auto_augment='{policy}': n must be at least 1")
    return num_ops, magnitude, std


def magnitude_weights(magnitude: int, std: float) -> List[Tuple[int, int]]:
    """[(integer magnitude, copies)] approximating timm's magnitude noise: each op draws m ~ N(magnitude, std),
    clipped to [0, 10]. MindSpore's op takes an integer magnitude, so the draw is rounded: the mass of N(m, std)
    on each integer's half-unit interval, as counts out of 24 slots in lowest terms (std 0.5: 1 / 4 / 1 for
    m-1 / m / m+1, the exact masses being 0.159 / 0.683 / 0.159)."""
    if std <= 0:
        return [(magnitude, 1)]
    def cdf(x: float) -> float:  # erf(+-inf) = +-1: the end levels take the clipped tails
        return 0.5 * (1.0 + math.erf((x - magnitude) / (std * math.sqrt(2.0))))
    masses = [(level, cdf(level + 0.5 if level < MAGNITUDE_MAX else math.inf)
               - cdf(level - 0.5 if level else -math.inf)) for level in range(MAGNITUDE_MAX + 1)]
    counts = [(level, round(mass * _NOISE_SLOTS)) for level, mass in masses]
    counts = [(level, count) for level, count in counts if count > 0]
    common = functools.reduce(math.gcd, [count for _, count in counts])
    return [(level, count // common) for level, count in counts]


def rand_augment(policy: str, interpolation, fill: Tuple[int, int, int] = (124, 116, 104)):
    """timm's RandAugment for `policy` as one MindSpore C++ op (uint8 HWC images, before Normalize).

    timm applies n ops drawn with replacement, each with probability 0.5 and its own magnitude ~ N(m, mstd); its
    level m / 10 of each op's range is magnitude m of MindSpore's op with 11 bins (rotate 27 degrees, shear 0.27,
    translate 0.41 of the side, colour +-0.81 at m9); geometric ops fill with the ImageNet mean, as timm's img_mean.

    Built as ONE RandomChoice over a flat list of outcomes: k ~ Binomial(n, 0.5) ops applied (C(n, k) copies of
    RandAugment(num_ops=k)), times the magnitude levels of `magnitude_weights`. Not as n RandomApply ops in a row:
    MindSpore seeds every random op of a map alike, so two identical ops make identical draws (both applied or
    neither; measured). Left from timm: its ops draw their magnitudes apart (here the k ops of one image share
    one), and MindSpore's op set is torchvision's (Identity in; timm's Invert and SolarizeAdd out): docs/DESIGN.md §5.
    """
    from mindspore import dtype as mstype
    from mindspore.dataset import transforms, vision

    if not hasattr(vision, "RandAugment"):
        raise UserError("this MindSpore release has no vision.RandAugment; upgrade MindSpore or set --auto_augment ''")
    num_ops, magnitude, std = parse_auto_augment(policy)
    levels = magnitude_weights(magnitude, std)
    slots = sum(copies for _, copies in levels)
    outcomes = []
    for applied in range(num_ops + 1):
        ways = math.comb(num_ops, applied)
        if applied == 0:  # no op: a uint8 -> uint8 cast, the cheapest C++ identity
            outcomes += [transforms.TypeCast(mstype.uint8)] * (ways * slots)
            continue
        outcomes += [vision.RandAugment(num_ops=applied, magnitude=level, num_magnitude_bins=MAGNITUDE_MAX + 1,
                                        interpolation=interpolation, fill_value=fill)
                     for level, copies in levels for _ in range(ways * copies)]
    return transforms.RandomChoice(outcomes)


def erase_boxes(height: int, width: int, count: int, rng: np.random.Generator, scale=(0.02, 1 / 3),
                ratio=(0.3, 3.3), attempts: int = 10) -> np.ndarray:
    """(count, 4) int boxes y0, y1, x0, x1 as timm's RandomErasing draws them: area ~ U(scale) of the image, log
    aspect ~ U(log ratio), h = round(sqrt(area * aspect)), w = round(sqrt(area / aspect)), the first of `attempts`
    draws that fits (h < height, w < width) placed uniformly; an empty box when none fits."""
    area = rng.uniform(scale[0], scale[1], (count, attempts)) * height * width
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (count, attempts)))
    h = np.round(np.sqrt(area * aspect)).astype(np.int64)
    w = np.round(np.sqrt(area / aspect)).astype(np.int64)
    fits = (h < height) & (w < width)
    first = fits.argmax(axis=1)
    rows = np.arange(count)
    h, w = np.where(fits.any(axis=1), h[rows, first], 0), np.where(fits.any(axis=1), w[rows, first], 0)
    y0 = (rng.random(count) * (height - h + 1)).astype(np.int64)
    x0 = (rng.random(count) * (width - w + 1)).astype(np.int64)
    return np.stack([y0, y0 + h, x0, x0 + w], axis=1)


def erase_draws(count: int, height: int, width: int, prob: float, rng: np.random.Generator) -> np.ndarray:
    """(count, 4) boxes of random erasing (Zhong et al.) for a batch: each image is erased with probability `prob`,
    in one `erase_boxes` box (zeroed after normalisation, i.e. set to the mean); the others get an empty box."""
    boxes = np.zeros((count, 4), np.int64)
    chosen = np.flatnonzero(rng.random(count) < prob)
    boxes[chosen] = erase_boxes(height, width, len(chosen), rng)
    return boxes


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a box covering about 1 - lam of the image, centred uniformly at random."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(y0), int(y1), int(x0), int(x1)


class MixupCutmix:
    """Batch map (uint8 HWC images, int labels) -> (normalised NCHW float32 images, soft float32 targets), as
    timm's Mixup after timm's RandomErasing (mode const, after normalisation). The normalisation happens here, in
    the same pass over the batch as erasing and mixing (`batch_kernel.normalize_mix`), so the per-image transform
    of such a recipe ends at uint8 HWC (`transforms.train_transforms`).

    Each batch is mixed with its reverse: mixup blends whole images with lam ~ Beta(mixup, mixup); cutmix pastes a
    box with lam ~ Beta(cutmix, cutmix), lam then corrected to the pasted area. With both on, cutmix is chosen with
    `switch_prob`; a batch is left unmixed with probability 1 - `prob`. Targets carry the label smoothing. With
    `re_prob`, random erasing is applied to each image first (timm erases per image, then mixes the batch).

    Batch b draws from a generator seeded by (seed, b), not from one running stream: the result for a batch is the
    same whichever worker (thread or process) makes it, so an epoch replays exactly on resume.
    """

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0, prob: float = 1.0,
                 switch_prob: float = 0.5, smoothing: float = 0.0, seed: Optional[int] = None,
                 re_prob: float = 0.0) -> None:
        self.num_classes, self.mixup, self.cutmix = num_classes, mixup, cutmix
        self.prob, self.switch_prob, self.smoothing = prob, switch_prob, smoothing
        self.seed, self.re_prob = (0 if seed is None else seed), re_prob
        self.calls = 0

    def _lam(self, rng: np.random.Generator) -> Tuple[float, bool]:
        if self.mixup <= 0 and self.cutmix <= 0 or rng.random() >= self.prob:
            return 1.0, False
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix if use_cutmix else self.mixup
        return float(rng.beta(alpha, alpha)), use_cutmix

    def __call__(self, images, labels, batch_info=None):
        batch = batch_info.get_batch_num() if batch_info is not None else self.calls
        self.calls += 1
        rng = np.random.default_rng([self.seed, batch])
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        n, (height, width) = len(images), np.shape(images[0])[:2]
        erase = erase_draws(n, height, width, self.re_prob, rng) if self.re_prob > 0 else np.zeros((n, 4), np.int64)
        lam, use_cutmix = self._lam(rng)
        mode, cut = NO_MIX, (0, 0, 0, 0)
        if lam < 1.0 and use_cutmix:
            mode, cut = CUTMIX, cutmix_box(height, width, lam, rng)
            lam = 1.0 - (cut[1] - cut[0]) * (cut[3] - cut[2]) / float(height * width)
        elif lam < 1.0:
            mode = MIXUP
        images = normalize_mix(images, erase, mode, lam, cut)
        if self.mixup <= 0 and self.cutmix <= 0:
            return images, labels.astype(np.int32)
        target = smooth_one_hot(labels, self.num_classes, self.smoothing)
        target = lam * target + (1.0 - lam) * target[::-1]
        return images, target.astype(np.float32)


def has_batch_map(cfg) -> bool:
    """Whether a recipe's training batches go through `batch_augment`'s map (which then also normalises)."""
    return cfg.get("re_prob", 0) > 0 or cfg.mixup > 0 or cfg.cutmix > 0


def batch_augment(cfg, seed: Optional[int]) -> Optional[MixupCutmix]:
    """The per-batch map of a training recipe (random erasing and/or mixup/cutmix), None when it has neither."""
    if not has_batch_map(cfg):
        return None
    return MixupCutmix(cfg.num_classes, cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob,
                       cfg.label_smooth_factor, seed, re_prob=cfg.get("re_prob", 0.0))
