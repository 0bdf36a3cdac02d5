"""Tiny learnable image folders for the training tests: the class is the dominant colour channel."""
import os

import numpy as np


def write_images(root, per_class, seed, classes=2, size=32):
    """`per_class` JPEGs of `size` px in `classes` class folders under `root` (class c: channel c brightened)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = os.path.join(root, f"class{c}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.random((size, size, 3)) * 120).astype(np.uint8)
            pixels[..., c % 3] += 120
            Image.fromarray(pixels).save(os.path.join(folder, f"{i:02d}.jpg"), quality=90)
