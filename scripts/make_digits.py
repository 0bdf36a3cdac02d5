#!/usr/bin/env python3
"""Build an ImageFolder data set of real JPEG files from scikit-learn's handwritten digits (no download).

    python scripts/make_digits.py OUT_DIR [--size 32] [--val_fraction 0.2] [--seed 0]

Writes OUT_DIR/train/<digit>/*.jpg and OUT_DIR/val/<digit>/*.jpg: the 1,797 8x8 grey images (values 0-16) scaled
to 0-255, upscaled to size x size RGB and saved as JPEG, split per class (stratified) with a fixed seed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Dict, Optional, Sequence

import numpy as np


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the validation samples: round(val_fraction * n_c) of each class c, chosen at random."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(val_fraction * len(members)))
        is_val[rng.choice(members, size=count, replace=False)] = True
    return is_val


def build(out_dir: str, size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> Dict[str, int]:
    """Write the data set (replacing an earlier one in `out_dir`); returns the number of images per split."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = digits.target
    is_val = stratified_split(labels, val_fraction, seed)
    for split in ("train", "val"):
        shutil.rmtree(os.path.join(out_dir, split), ignore_errors=True)
    counts = {"train": 0, "val": 0}
    for index, (image, label, val) in enumerate(zip(images, labels, is_val)):
        split = "val" if val else "train"
        folder = os.path.join(out_dir, split, str(label))
        os.makedirs(folder, exist_ok=True)
        # a 2-D uint8 array is mode L
        picture = Image.fromarray(image).resize((size, size), Image.BICUBIC).convert("RGB")
        picture.save(os.path.join(folder, f"{index:04d}.jpg"), quality=95)
        counts[split] += 1
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to create train/ and val/ in")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--val_fraction", type=float, default=0.2, help="share of each class in val/ (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    args = parser.parse_args(argv)
    if args.size < 8 or not 0 < args.val_fraction < 1:
        parser.error("--size must be >= 8 and --val_fraction in (0, 1)")
    counts = build(args.out_dir, args.size, args.val_fraction, args.seed)
    print(f"digits: {counts['train']} train / {counts['val']} val JPEGs of {args.size}x{args.size} in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
