#!/usr/bin/env python3
"""Helpers of scripts/gpu_smoke.sh. Imports neither MindSpore nor the zoo: `torch-train` runs in a PyTorch-only venv.

    python scripts/gpu_smoke.py jpegs OUT_DIR --train N --val N [--size 224] [--classes 10] [--seed 0]
    python scripts/gpu_smoke.py torch-train --arch resnext50_32x4d --batch_size 64 [--image_size 224] [--steps 20]
        [--warmup 5] [--num_classes 1000] [--device cuda:0] [--amp true] [--json FILE]
    python scripts/gpu_smoke.py summary OUT_DIR ARCH [ARCH ...]

jpegs: an ImageFolder (OUT_DIR/train/<class>/*.jpg, OUT_DIR/val/<class>/*.jpg) of synthetic size x size JPEGs, one
colour per class under noise, so a short run learns something. torch-train: img/s of PyTorch's training step
(torchvision resnext50_32x4d or timm resnest50d, SGD momentum, label-smoothing cross entropy, autocast fp16 with a
GradScaler as the counterpart of MindSpore's AMP O2) on a fixed random batch. summary: one table from the files the
smoke run wrote (metrics.jsonl, eval_*.json, bench-ARCH.json, torch-ARCH.json, the exported files).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

# arch of the zoo -> how PyTorch builds the same network
TORCH_ARCHS = {"resnext50_32x4d": ("torchvision", "resnext50_32x4d"), "resnest50": ("timm", "resnest50d")}


def write_jpegs(out_dir: str, train: int, val: int, size: int = 224, classes: int = 10,
                seed: int = 0) -> Dict[str, int]:
    """`train` and `val` JPEGs spread evenly over `classes` class folders; returns the count per split."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    palette = rng.integers(40, 216, size=(classes, 3))
    ramp = np.linspace(-30, 30, size, dtype=np.float32)
    counts = {}
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            label = index % classes
            folder = os.path.join(out_dir, split, f"class{label:02d}")
            os.makedirs(folder, exist_ok=True)
            pixels = palette[label] + ramp[:, None, None] + rng.normal(0, 25, (size, size, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(
                os.path.join(folder, f"{index:05d}.jpg"), quality=90)
        counts[split] = count
    return counts


def torch_model(arch: str, num_classes: int):
    source, name = TORCH_ARCHS[arch]
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    import torchvision

    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)


def torch_train(arch: str, batch_size: int, image_size: int, steps: int, warmup: int, num_classes: int,
                device: str, amp: bool) -> Dict:
    """Median and mean img/s of `steps` timed training steps after `warmup` untimed ones."""
    import torch

    torch.manual_seed(0)
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    model = torch_model(arch, num_classes).to(device).train()
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    labels = torch.randint(0, num_classes, (batch_size,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    use_amp = amp and on_gpu
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda" if on_gpu else "cpu", dtype=torch.float16, enabled=use_amp):
            loss = loss_fn(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sync()

    for _ in range(warmup + 1):  # the first step picks the cuDNN algorithms
        step()
    times: List[float] = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    ordered = sorted(times)
    median = ordered[len(ordered) // 2]
    return {"arch": arch, "torch_model": "/".join(TORCH_ARCHS[arch]), "batch_size": batch_size,
            "image_size": image_size, "steps": steps, "device": device,
            "device_name": torch.cuda.get_device_name(torch.device(device)) if on_gpu else "cpu",
            "amp": "fp16" if use_amp else "off", "torch": torch.__version__, "img_s": batch_size / median,
            "img_s_mean": batch_size * steps / sum(times), "ms_step": 1000 * median}


def _load_json(path: str) -> Optional[Dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _last_metrics(path: str) -> Optional[Dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line for line in fh if line.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def summary_rows(out_dir: str, archs: Sequence[str]) -> List[Dict]:
    """What the smoke run left for each arch (None where a step did not run or failed)."""
    rows = []
    for arch in archs:
        run = os.path.join(out_dir, arch)
        last = _last_metrics(os.path.join(run, "metrics.jsonl")) or {}
        evals = sorted(glob.glob(os.path.join(run, "eval_*.json")))
        evaluated = _load_json(evals[-1]) if evals else None
        bench = _load_json(os.path.join(out_dir, f"bench-{arch}.json")) or {}
        theirs = _load_json(os.path.join(out_dir, f"torch-{arch}.json")) or {}
        ours_step = bench.get("ours", {}).get("img_s")
        torch_step = theirs.get("img_s")
        exported = {fmt: os.path.getsize(p) / 2 ** 20 if os.path.isfile(p) else None
                    for fmt, p in (("MINDIR", os.path.join(run, f"{arch}.mindir")),
                                   ("ONNX", os.path.join(run, f"{arch}.onnx")))}
        rows.append({"arch": arch, "train_img_s": last.get("img_per_sec"), "train_loss": last.get("loss"),
                     "eval_img_s": (evaluated or {}).get("img_per_sec"), "eval_top1": (evaluated or {}).get("top1"),
                     "step_img_s": ours_step, "torch_img_s": torch_step,
                     "ratio": ours_step / torch_step if ours_step and torch_step else None,
                     "mindir_mb": exported["MINDIR"], "onnx_mb": exported["ONNX"]})
    return rows


def print_summary(rows: List[Dict]) -> None:
    columns = [("arch", "arch", "{}"), ("train_img_s", "train.py img/s", "{:.1f}"),
               ("step_img_s", "step img/s", "{:.1f}"), ("torch_img_s", "torch img/s", "{:.1f}"),
               ("ratio", "ours/torch", "{:.3f}"), ("eval_img_s", "eval img/s", "{:.1f}"),
               ("eval_top1", "eval top-1", "{:.3f}"), ("mindir_mb", "MINDIR MB", "{:.1f}"),
               ("onnx_mb", "ONNX MB", "{:.1f}")]
    cells = [[head for _, head, _ in columns]]
    for row in rows:
        cells.append([("-" if row[key] is None else fmt.format(row[key])) for key, _, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in
                        enumerate(zip(line, widths))))


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")
    return text.lower() == "true"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    jpegs = sub.add_parser("jpegs", help="write a synthetic ImageFolder")
    jpegs.add_argument("out_dir")
    jpegs.add_argument("--train", type=_positive, required=True)
    jpegs.add_argument("--val", type=_positive, required=True)
    jpegs.add_argument("--size", type=_positive, default=224)
    jpegs.add_argument("--classes", type=_positive, default=10)
    jpegs.add_argument("--seed", type=int, default=0)
    bench = sub.add_parser("torch-train", help="img/s of PyTorch's training step")
    bench.add_argument("--arch", required=True, choices=sorted(TORCH_ARCHS))
    bench.add_argument("--batch_size", type=_positive, required=True)
    bench.add_argument("--image_size", type=_positive, default=224)
    bench.add_argument("--steps", type=_positive, default=20)
    bench.add_argument("--warmup", type=int, default=5)
    bench.add_argument("--num_classes", type=_positive, default=1000)
    bench.add_argument("--device", default="cuda:0")
    bench.add_argument("--amp", type=_bool, default=True, help="autocast fp16 + GradScaler on CUDA (true/false)")
    bench.add_argument("--json", default="")
    summary = sub.add_parser("summary", help="one table from a smoke run's folder")
    summary.add_argument("out_dir")
    summary.add_argument("archs", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "jpegs":
        counts = write_jpegs(args.out_dir, args.train, args.val, args.size, args.classes, args.seed)
        print(f"jpegs: {counts['train']} train / {counts['val']} val {args.size}x{args.size} JPEGs in "
              f"{args.classes} classes under {args.out_dir}")
    elif args.command == "torch-train":
        result = torch_train(args.arch, args.batch_size, args.image_size, args.steps, max(0, args.warmup),
                             args.num_classes, args.device, args.amp)
        print(f"torch {result['torch_model']} train: {result['img_s']:.1f} img/s (median step {result['ms_step']:.1f} "
              f"ms, batch {args.batch_size}, {args.image_size} px, AMP {result['amp']}, {result['device_name']}, "
              f"torch {result['torch']})")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=2)
    else:
        if not os.path.isdir(args.out_dir):
            print(f"error: '{args.out_dir}' is not a folder", file=sys.stderr)
            return 2
        print_summary(summary_rows(args.out_dir, args.archs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
