#!/usr/bin/env python3
"""Eval presets against their authors' transforms on five real photographs, and the cost of the PIL path.

    python benchmarks/eval_presets.py [--images 64] [--workers 2]

For each preset and decode/resize backend: max and mean |diff| (normalised units; one grey level is about 0.017)
between the zoo's eval transform and the reference: torchvision's Resize/CenterCrop/ToTensor/Normalize on a PIL
image (timm's eval transform is the same with bicubic and floor(224 / 0.875) = 256). Photographs: scikit-image's
astronaut, coffee, chelsea and scikit-learn's china, flower, saved as JPEG quality 92. Then the img/s of the eval
dataset (decode, resize, crop, normalise, batch 32) with either backend over copies of those photographs.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHOTOS = ("astronaut", "coffee", "chelsea", "china", "flower")


def write_photos(folder: str) -> list:
    """The five photographs as JPEG q92 files; returns their paths."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_image

    paths = []
    for name in PHOTOS:
        pixels = getattr(data, name)() if name in ("astronaut", "coffee", "chelsea") else load_sample_image(
            f"{name}.jpg")
        path = os.path.join(folder, f"{name}.jpg")
        Image.fromarray(pixels).save(path, quality=92)
        paths.append(path)
    return paths


def reference(path: str, preset) -> np.ndarray:
    """torchvision's eval transform of the preset's sizes on a PIL image (what the weights' authors ran)."""
    from PIL import Image
    from torchvision import transforms as T

    inter = T.InterpolationMode.BICUBIC if preset.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    tf = T.Compose([T.Resize(preset.resize, interpolation=inter), T.CenterCrop(preset.crop), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    with Image.open(path) as image:
        return tf(image.convert("RGB")).numpy()


def zoo_output(path: str, preset) -> np.ndarray:
    """The zoo's eval ops for `preset` applied to the file's bytes (as the eval dataset applies them)."""
    from common.data.presets import eval_ops

    data = np.fromfile(path, dtype=np.uint8)
    for op in eval_ops(preset):
        data = op(data)
    return np.asarray(data, np.float32)


def differences(paths: list) -> list:
    """Rows (preset, backend, resize, crop, interpolation, max |diff|, mean |diff| per photo)."""
    from common.data.presets import PRESET_NAMES, resolve_preset

    rows = []
    for name in PRESET_NAMES:
        for backend in ("mindspore", "pil"):
            preset = resolve_preset(name, backend=backend)
            diffs = [np.abs(zoo_output(p, preset) - reference(p, preset)) for p in paths]
            rows.append((name, backend, preset.resize, preset.crop, preset.interpolation,
                         max(float(d.max()) for d in diffs), [float(d.mean()) for d in diffs]))
    return rows


def throughput(paths: list, backend: str, images: int, workers: int) -> float:
    """Images per second of the eval dataset (torchvision_v1 sizes) with `backend`, after one warm-up pass."""
    import mindspore.dataset as ds

    from common.data.presets import eval_ops, resolve_preset

    blobs = [np.fromfile(p, dtype=np.uint8) for p in paths]
    source = [(blobs[i % len(blobs)], np.int32(0)) for i in range(images)]
    best = 0.0
    for _ in range(2):
        dataset = ds.GeneratorDataset(source, ["image", "label"], shuffle=False, num_parallel_workers=1,
                                      python_multiprocessing=False)
        dataset = dataset.map(eval_ops(resolve_preset("torchvision_v1", backend=backend)), "image",
                              num_parallel_workers=workers).batch(32)
        start = time.perf_counter()
        count = sum(len(b[1]) for b in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
        best = max(best, count / (time.perf_counter() - start))
    return best


def per_image_ms(paths: list, backend: str, rounds: int = 5) -> float:
    """Milliseconds per photograph of the torchvision_v1 transform, one thread, best of `rounds` passes (the best
    pass is the one least disturbed by other processes on a shared machine)."""
    from common.data.presets import eval_ops, resolve_preset

    ops = eval_ops(resolve_preset("torchvision_v1", backend=backend))
    blobs = [np.fromfile(p, dtype=np.uint8) for p in paths]
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for blob in blobs:
            data = blob
            for op in ops:
                data = op(data)
        best = min(best, (time.perf_counter() - start) / len(blobs))
    return 1000 * best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="images per throughput pass")
    parser.add_argument("--workers", type=int, default=2, help="dataset map workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_photos(folder)
        print("| preset | backend | resize / crop / interpolation | max \\|diff\\| | mean \\|diff\\| per photo ("
              + ", ".join(PHOTOS) + ") |")
        print("|---|---|---|---|---|")
        for name, backend, resize, crop, inter, worst, means in differences(paths):
            print(f"| {name} | {backend} | {resize} / {crop} / {inter} | {worst:.3g} | "
                  + ", ".join(f"{m:.4f}" for m in means) + " |")
        for backend in ("mindspore", "pil"):
            print(f"one thread, torchvision_v1 sizes, {backend}: {per_image_ms(paths, backend):.2f} ms per photograph "
                  f"(best of 5 passes over the five)")
        for backend in ("mindspore", "pil"):
            rate = throughput(paths, backend, args.images, args.workers)
            print(f"eval pipeline, torchvision_v1 sizes, {backend}: {rate:.1f} img/s "
                  f"({args.images} images, {args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
