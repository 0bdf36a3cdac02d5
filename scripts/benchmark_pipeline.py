"""Pipeline mode of scripts/benchmark.py: the zoo's real train/eval data pipelines vs torchvision transforms.

Both read the same folder of real JPEGs of ImageNet size, made from the photographs scikit-learn ships
(docs/DESIGN.md §6), and deliver batches of normalised CHW float32 images. "per worker" is one transform worker
each (MindSpore num_parallel_workers=1; PyTorch DataLoader num_workers=0, the main process with one intra-op
thread as a DataLoader worker has: its fastest single-worker set-up);
"at N workers" uses the zoo's configured worker count for both, timing one side after the other. CPU ms per image
(process CPU time / images) is reported beside img/s for the one-worker runs: it is what a core buys, whatever the
machine's load.
"""
from __future__ import annotations

import os
import resource
import time
from typing import Callable, Dict, List, Tuple


def make_jpeg_folder(root: str, count: int, seed: int = 0) -> str:
    """`count` JPEGs (crops, flips and rescales of sklearn's china.jpg and flower.jpg, long side 400-640 px, the
    size of typical ImageNet photos) in two class folders under root/train and root/val; returns root."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_image

    rng = np.random.default_rng(seed)
    photos = [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    for split in ("train", "val"):
        for i in range(count):
            photo = photos[i % 2]
            h, w = photo.shape[:2]
            ch, cw = int(h * rng.uniform(0.7, 1.0)), int(w * rng.uniform(0.7, 1.0))
            top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            image = Image.fromarray(photo[top:top + ch, left:left + cw])
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            scale = rng.uniform(400, 640) / max(ch, cw)
            image = image.resize((max(1, int(cw * scale)), max(1, int(ch * scale))), Image.BILINEAR)
            folder = os.path.join(root, split, f"class{i % 2}")
            os.makedirs(folder, exist_ok=True)
            image.save(os.path.join(folder, f"img{i:04d}.jpg"), quality=90)
    return root


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ours_pass(cfg, root: str, training: bool, workers: int,
              repeats: int) -> Tuple[Callable[[], int], Callable[[], None]]:
    """(one timed pass -> images delivered, cleanup) over common.data.pipeline.create_dataset's real pipeline."""
    from common.data.pipeline import create_dataset

    local = dict(cfg)
    local.update(num_parallel_workers=workers, data_dir=root)
    local = type(cfg)(local)
    dataset, _ = create_dataset(local, "train" if training else "val", training=training, seed=cfg.seed)
    dataset = dataset.repeat(repeats)

    def one_pass() -> int:
        # A fresh one-epoch iterator per pass: a long-lived one would keep decoding into its prefetch queue while
        # the other side is being timed. Its start-up cost stays in the figure (small beside 256+ images).
        iterator = dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)
        return sum(images.shape[0] for images, _ in iterator)
    return one_pass, lambda: None


def torch_transforms(cfg, training: bool):
    from torchvision import transforms as T

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    inter = T.InterpolationMode.BICUBIC if cfg.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    if training:
        ops = [T.RandomResizedCrop(cfg.image_size, scale=(cfg.scale_min, 1.0), interpolation=inter)]
        if cfg.hflip > 0:
            ops.append(T.RandomHorizontalFlip(cfg.hflip))
        if cfg.color_jitter > 0:
            ops.append(T.ColorJitter(cfg.color_jitter, cfg.color_jitter, cfg.color_jitter))
    else:
        ops = [T.Resize(int(round(cfg.image_size / cfg.crop_pct)), interpolation=inter), T.CenterCrop(cfg.image_size)]
    return T.Compose(ops + [T.ToTensor(), T.Normalize(mean, std)])


def theirs_pass(cfg, root: str, training: bool, workers: int, repeats: int):
    """Same folder through torchvision.datasets.ImageFolder (PIL decode) + DataLoader."""
    import torch
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(os.path.join(root, "train" if training else "val"), torch_transforms(cfg, training))
    data = torch.utils.data.ConcatDataset([folder] * repeats)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=training, drop_last=training,
                                         num_workers=workers, persistent_workers=workers > 0)

    def one_pass() -> int:
        if workers:
            return sum(images.shape[0] for images, _ in loader)
        # In-process: one intra-op thread, as DataLoader gives each worker process (two threads on small tensor ops
        # are several times slower on a busy 2-core machine).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return sum(images.shape[0] for images, _ in loader)
        finally:
            torch.set_num_threads(threads)

    def close() -> None:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
    return one_pass, close


def measure(passes: Dict[str, Callable[[], int]], rounds: int) -> Dict[str, Dict[str, float]]:
    """Alternate one pass of each side per round; median img/s and CPU ms per image of the process."""
    rates: Dict[str, List[float]] = {k: [] for k in passes}
    cpu: Dict[str, List[float]] = {k: [] for k in passes}
    for one_pass in passes.values():  # warm-up: thread/process start, first decode
        one_pass()
    for _ in range(rounds):
        for name, one_pass in passes.items():
            c0, t0 = cpu_seconds(), time.perf_counter()
            seen = one_pass()
            wall, used = time.perf_counter() - t0, cpu_seconds() - c0
            rates[name].append(seen / wall)
            cpu[name].append(1000 * used / seen)
    return {k: {"img_s": sorted(v)[len(v) // 2], "cpu_ms_per_img": sorted(cpu[k])[len(cpu[k]) // 2]}
            for k, v in rates.items()}


def _measure_sides(sides, cfg, root: str, training: bool, repeats: int, rounds: int) -> Dict[str, Dict[str, float]]:
    """Build each (name, pass factory, workers) side, time them alternately, then shut them down."""
    passes, closers = {}, []
    for name, factory, workers in sides:
        passes[name], close = factory(cfg, root, training, workers, repeats)
        closers.append(close)
    try:
        return measure(passes, rounds)
    finally:
        for close in closers:
            close()


def run_pipeline(args, cfg, tmp: str) -> dict:
    """Train and eval pipelines at one worker and at the configured worker count; ratios ours/theirs."""
    from common.data.pipeline import default_workers

    root = make_jpeg_folder(tmp, args.images, cfg.seed)
    workers = cfg.num_parallel_workers or default_workers(1)
    rounds = max(1, min(args.steps, 5))
    per_pass = max(256, 8 * cfg.batch_size)  # images per timed pass: the folder, repeated
    repeats = max(1, (per_pass + args.images - 1) // args.images)
    ours: Dict[str, float] = {"workers": workers}
    theirs: Dict[str, float] = {"workers": workers}
    ratios: Dict[str, float] = {}
    for training in (True, False):
        split = "train" if training else "eval"
        for label, w_ours, w_theirs in (("1worker", 1, 0), (f"{workers}workers", workers, workers)):
            if label != "1worker" and workers == 1:
                continue
            sides = [("ours", ours_pass, w_ours)] + ([("theirs", theirs_pass, w_theirs)] if args.compare else [])
            if label == "1worker":
                got = _measure_sides(sides, cfg, root, training, repeats, rounds)
            else:
                # Several workers: one side at a time. Alternating, the torch DataLoader's worker processes and our
                # pipeline's threads share the 2 cores and cut ours from ~1080 to ~540 img/s (RESULTS.md round 3).
                got = {}
                for side in sides:
                    got.update(_measure_sides([side], cfg, root, training, repeats, rounds))
            key = f"{split}_{label}"
            ours[f"{key}_img_s"] = got["ours"]["img_s"]
            if label == "1worker":
                ours[f"{key}_cpu_ms_per_img"] = got["ours"]["cpu_ms_per_img"]
            if args.compare:
                theirs[f"{key}_img_s"] = got["theirs"]["img_s"]
                if label == "1worker":
                    theirs[f"{key}_cpu_ms_per_img"] = got["theirs"]["cpu_ms_per_img"]
                ratios[key] = got["ours"]["img_s"] / got["theirs"]["img_s"]
    result = {"ours": ours}
    if args.compare:
        result.update(theirs=theirs, ratios=ratios, ratio=ratios["train_1worker"])
    return result
