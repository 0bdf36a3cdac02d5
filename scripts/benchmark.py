#!/usr/bin/env python
"""Throughput of the zoo's real training step, inference network and data pipeline, optionally side by side with
PyTorch (torchvision / timm models, torchvision transforms) in the same process.

    python scripts/benchmark.py --arch resnext50_32x4d --mode train --batch_size 8 --image_size 224 \
        --device_target CPU --compare torch --json out.json

Modes: train (the step train.py runs: loss, optimizer, AMP/loss scale), eval (the inference network), compile
(graph-compile seconds of the train and eval graphs), pipeline (train/eval transforms on real JPEGs, one worker and
the configured worker count). With --compare torch each timed step of ours is followed by one of theirs, so both see
the same machine load; the ratio is ours/theirs in img/s (> 1: ours is faster). Results: one table on stdout and,
with --json, a file with top-level keys mode, ours, theirs, ratio (and ratios for pipeline, env for the set-up).

A/B of one of the zoo's CPU operator switches (SWITCHES below): --ab NAME builds the step a second time with NAME=0
in the same process and alternates the two; the JSON then has `baseline` (NAME=0) and ratio = ours/baseline. Each
side records `custom_cells`, the cells of its built network and step that run one of the zoo's CPU operators; a
switch that leaves the count unchanged (a family the arch does not have, or operators not built here) is refused.
With --compare torch the JSON's `theirs_model` names the PyTorch model that ran and its parameter count.

    python scripts/benchmark.py --arch resnext50_32x4d --mode train --batch_size 8 --ab ZOO_FUSED_BN --steps 7

Data-parallel scaling: start train mode under msrun; each worker runs --batch_size images per step, gradients are
all-reduced, and rank 0 reports the global img/s (key `workers` in the JSON):

    msrun --worker_num 2 --local_worker_num 2 --join True python scripts/benchmark.py --mode train ...
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (ROOT, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from common.cpu_ops import SWITCHES as CPU_OP_SWITCHES  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402

MODES = ("train", "eval", "pipeline", "compile")
# Environment switches of the zoo's CPU operators, read when a network is built (common/cpu_ops); "0" turns one off.
SWITCHES = CPU_OP_SWITCHES


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnext50_32x4d")
    p.add_argument("--mode", default="train", choices=MODES)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--device_target", default="CPU", choices=("CPU", "GPU", "Ascend"))
    p.add_argument("--steps", type=int, default=10, help="timed steps (pipeline: passes) after warm-up")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (compiling) one")
    p.add_argument("--compare", default="", choices=("", "torch"), help="also run the PyTorch equivalent")
    p.add_argument("--json", default="", help="write the results here")
    p.add_argument("--ab", default="", help=f"also time ours built with this switch at 0, one of {', '.join(SWITCHES)}")
    p.add_argument("--num_classes", type=int, default=1000)
    p.add_argument("--sync_every", type=int, default=0,
                   help="train: 0 = read the loss after every step; 1 = loss and overflow flag every step (train.py "
                        "before issue 14); K > 1 = K steps, then one read of their losses and the overflow counters "
                        "(train.py now, log_interval K); times are per step")
    p.add_argument("--amp_level", default="", help="override the recipe's AMP level ('' = recipe; CPU: O0)")
    p.add_argument("--ms_mode", default="graph", choices=("graph", "pynative"))
    p.add_argument("--jit_level", default="", choices=("", "O0", "O1", "O2"))
    p.add_argument("--num_workers", type=int, default=0, help="pipeline workers (0 = the zoo's default)")
    p.add_argument("--images", type=int, default=64, help="pipeline: JPEG files in the generated folder")
    p.add_argument("--pass_images", type=int, default=256,
                   help="pipeline: images per timed pass (the folder repeated; at least 8 batches)")
    p.add_argument("--torch_threads", type=int, default=0, help="PyTorch intra-op threads (0 = its default)")
    args = p.parse_args(argv)
    for name in ("batch_size", "image_size", "steps", "num_classes", "images", "pass_images"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name} must be > 0, got {getattr(args, name)}")
    if args.image_size < 32:
        raise UserError(f"--image_size {args.image_size} is below 32, the smallest input the network takes")
    if args.torch_threads < 0:
        raise UserError(f"--torch_threads must be >= 0, got {args.torch_threads}")
    if args.mode == "compile" and args.compare:
        raise UserError("--compare torch has no meaning with --mode compile (PyTorch eager has no compile step)")
    if args.ab and (args.ab not in SWITCHES or args.compare or args.mode not in ("train", "eval")):
        raise UserError(f"--ab takes one of {', '.join(SWITCHES)}, with --mode train or eval and without --compare; "
                        f"got --ab {args.ab} --mode {args.mode}" + (" --compare torch" if args.compare else ""))
    return args


def load_bench_config(args: argparse.Namespace):
    """The arch's recipe (its model folder's default_config.yaml when there is one) with the benchmark's sizes."""
    from common.config import load_config
    from common.models import ARCHS

    if args.arch not in ARCHS:
        raise UserError(f"unknown arch '{args.arch}'; choose one of: {', '.join(ARCHS)}")
    yaml_path = os.path.join(ROOT, args.arch, "default_config.yaml")
    amp = args.amp_level or ("O0" if args.device_target == "CPU" else "")
    argv = ["--arch", args.arch, "--batch_size", str(args.batch_size), "--image_size", str(args.image_size),
            "--device_target", args.device_target, "--num_classes", str(args.num_classes), "--mode", args.ms_mode,
            "--jit_level", args.jit_level] + (["--amp_level", amp] if amp else [])
    if args.num_workers:
        argv += ["--num_parallel_workers", str(args.num_workers)]
    return load_config(yaml_path if os.path.isfile(yaml_path) else None, argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median(values: List[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def time_alternating(runs: Dict[str, Callable[[], None]], steps: int) -> Dict[str, List[float]]:
    """Seconds per call of each run, one call of each in turn, so every run sees the same load."""
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(steps):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------------------------- ours (MindSpore)
def count_custom_cells(cell) -> int:
    """Cells under `cell` that run one of the zoo's CPU operators: instances of common.cpu_ops classes, except a BN
    of theirs built unfused (that one is MindSpore's BatchNorm)."""
    return sum(1 for _, sub in cell.cells_and_names()
               if type(sub).__module__.startswith("common.cpu_ops.") and getattr(sub, "fused", True))


def ours_step(cfg, training: bool, group_size: int = 1, sync_every: int = 0) -> Callable[[], None]:
    """One call of the real training step (or of the inference network) on a fixed random batch; the callable's
    `custom_cells` is count_custom_cells of what it runs. `sync_every` N > 1: one call is N steps with one host
    read at the end (as train.py's loop reads once per log window); 1: a read of loss and flag every step."""
    import mindspore as ms
    import numpy as np

    from common.models import create_model

    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((cfg.batch_size, 3, cfg.image_size, cfg.image_size), dtype=np.float32))
    labels = ms.Tensor(rng.integers(0, cfg.num_classes, cfg.batch_size).astype(np.int32))
    net = create_model(cfg.arch, num_classes=cfg.num_classes, drop_rate=cfg.drop_rate,
                       zero_init_last=cfg.zero_init_last)
    if not training:
        from common.models.bn_fold import fold_batchnorm

        fold_batchnorm(net)  # as eval.py / predict.py / export.py run it (common.inference.load_inference_network)
        built = net

        def run() -> None:
            net(images).asnumpy()
    else:
        built = step = build_ms_train_step(net, cfg, group_size)  # the optimizer (FusedMomentum) is one of its cells

        def run() -> None:
            if sync_every == 1:
                float(step(images, labels).asnumpy()), bool(step.last_overflow.asnumpy())
            elif sync_every > 1:
                losses = [step(images, labels) for _ in range(sync_every)]
                ms.ops.stack(losses).asnumpy()
                int(step.skipped_steps.asnumpy()), int(step.skipped_steps_longest_run.asnumpy())
            else:
                step(images, labels).asnumpy()
    run.custom_cells = count_custom_cells(built)
    return run


def ours_step_with_switch_off(cfg, training: bool, switch: str, group_size: int = 1) -> Callable[[], None]:
    """ours_step built with the environment switch `switch` at 0 (the process's value restored afterwards)."""
    from common.cpu_ops import switched

    with switched(switch, "0"):
        return ours_step(cfg, training, group_size)


def build_ms_train_step(net, cfg, group_size: int = 1):
    """common.training.step.build_train_step: the exact step train.py runs (all-reducing gradients under msrun)."""
    from common.training.step import build_train_step

    return build_train_step(net, cfg, steps_per_epoch=1000, group_size=group_size)


# --------------------------------------------------------------------------------------------- theirs (PyTorch)
def torch_model_name(arch: str) -> str:
    """The constructor call torch_model makes for `arch`, as recorded in the JSON."""
    from common.models import ARCHS

    spec = ARCHS[arch]
    if spec.source == "timm":
        return "timm.create_model('resnest50d')"
    return (f"torchvision.models.resnet.ResNet(Bottleneck, {list(spec.layers)}, groups={spec.kwargs['groups']}, "
            f"width_per_group={spec.kwargs['base_width']})")


def torch_model(arch: str, num_classes: int):
    """torchvision's ResNeXt (any depth/width of the zoo) or timm's resnest50d, randomly initialised."""
    from common.models import ARCHS

    spec = ARCHS[arch]
    if spec.source == "timm":
        import timm

        return timm.create_model("resnest50d", pretrained=False, num_classes=num_classes)
    from torchvision.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, list(spec.layers), num_classes=num_classes, groups=spec.kwargs["groups"],
                  width_per_group=spec.kwargs["base_width"])


def theirs_step(cfg, training: bool) -> Callable[[], None]:
    """The same work in PyTorch: SGD momentum + label-smoothing CE (+ autocast on GPU when ours uses AMP); the
    callable's `model` is the torch model it runs."""
    import torch

    torch.manual_seed(0)
    device = "cuda" if cfg.device_target == "GPU" else "cpu"
    model = torch_model(cfg.arch, cfg.num_classes).to(device)
    images = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device)
    labels = torch.randint(0, cfg.num_classes, (cfg.batch_size,), device=device)
    amp = device == "cuda" and cfg.amp_level != "O0"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if not training:
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), torch.autocast(device, enabled=amp):
                model(images)
            sync()
        infer.model = model
        return infer
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smooth_factor)
    scaler = torch.amp.GradScaler(device, enabled=amp)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, enabled=amp):
            loss = loss_fn(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        loss.item()
    train_step.model = model
    return train_step


# ------------------------------------------------------------------------------------------------ model modes
def run_model(args, cfg, group_size: int = 1) -> dict:
    """train / eval: warm up, then time ours and theirs alternately; img/s from the median step (all workers')."""
    training = args.mode == "train"
    ours = ours_step(cfg, training, group_size, args.sync_every if training else 0)
    start = time.perf_counter()
    ours()
    first_s = time.perf_counter() - start
    for _ in range(args.warmup):
        ours()
    ours_peak = peak_rss_mb()  # before theirs exists: ours alone
    runs = {"ours": ours}
    if args.compare:
        theirs = theirs_step(cfg, training)
        for _ in range(args.warmup + 1):
            theirs()
        runs["theirs"] = theirs
    if args.ab:
        baseline = ours_step_with_switch_off(cfg, training, args.ab, group_size)
        if baseline.custom_cells == ours.custom_cells:
            raise UserError(f"--ab {args.ab} changes nothing in {args.arch}'s {args.mode} network here (both sides "
                            f"have {ours.custom_cells} custom CPU-operator cells); choose another switch or --arch")
        for _ in range(args.warmup + 1):
            baseline()
        runs["baseline"] = baseline
    times = time_alternating(runs, args.steps)
    result = {}
    for name, secs in times.items():
        per_call = args.sync_every if training and name == "ours" and args.sync_every > 1 else 1
        secs = [s / per_call for s in secs]
        step_s = median(secs)
        images = cfg.batch_size * (1 if name == "theirs" else group_size)
        result[name] = {"img_s": images / step_s, "ms_step": 1000 * step_s,
                        "ms_step_min": 1000 * min(secs), "ms_step_max": 1000 * max(secs)}
    result["ours"].update(first_call_s=first_s, peak_rss_mb=ours_peak)
    for name, run in runs.items():
        if name != "theirs":
            result[name]["custom_cells"] = run.custom_cells
    if args.compare:
        result["theirs_model"] = {"name": torch_model_name(cfg.arch),
                                  "params": sum(p.numel() for p in theirs.model.parameters())}
    return result


def run_compile(args, cfg) -> dict:
    """Graph-compile seconds: first call minus a steady call, for the train step and the eval network."""
    out = {}
    for name, training in (("train", True), ("eval", False)):
        step = ours_step(cfg, training)
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        steady = median(time_alternating({"s": step}, max(1, min(args.steps, 3)))["s"])
        out[f"{name}_compile_s"] = max(0.0, first - steady)
        out[f"{name}_first_call_s"] = first
        out[f"{name}_ms_step"] = 1000 * steady
    return {"ours": out}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("GLOG_v", "3")
    cfg = load_bench_config(args)
    from common.context import init_context, launched_distributed

    if launched_distributed() and (args.mode != "train" or args.compare):
        raise UserError("under msrun only --mode train without --compare is measured (data-parallel scaling)")
    dist = init_context(args.device_target, args.ms_mode, args.jit_level)
    import mindspore as ms

    ms.set_seed(cfg.seed)
    if args.compare and args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    if args.mode == "pipeline":
        from benchmark_pipeline import run_pipeline

        with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
            result = run_pipeline(args, cfg, tmp)
    elif args.mode == "compile":
        result = run_compile(args, cfg)
    else:
        result = run_model(args, cfg, dist.group_size)
    if not dist.is_main:
        return 0
    report = {"mode": args.mode, "arch": args.arch, "batch_size": args.batch_size, "image_size": args.image_size,
              "device_target": args.device_target, "steps": args.steps, "workers": dist.group_size, **result,
              "env": environment(args)}
    if "theirs" in result and "ratio" not in result:
        report["ratio"] = result["ours"]["img_s"] / result["theirs"]["img_s"]
    if "baseline" in result:
        report.update(ab=args.ab, ratio=result["ours"]["img_s"] / result["baseline"]["img_s"])
    print_table(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return 0


def environment(args) -> dict:
    """What the numbers depend on: versions, cores, load, threads, the switches of the zoo's CPU operators."""
    import mindspore as ms

    from common.cpu_ops import library_path

    env = {"mindspore": ms.__version__, "cpu_count": os.cpu_count(), "ms_mode": args.ms_mode,
           "jit_level": args.jit_level or "default",
           # each switch as set: ZOO_FUSED_BN -> fused_bn, ...
           **{name[len("ZOO_"):].lower(): os.environ.get(name, "1") for name in SWITCHES},
           # the pipeline builds no network: no reason to compile the operators for it
           "cpu_ops_built": args.device_target == "CPU" and args.mode != "pipeline" and library_path() is not None,
           "loadavg_1min": os.getloadavg()[0]}
    if args.compare:
        import torch

        env.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return env


def print_table(report: dict) -> None:
    """One row per side and measure; the ratio last."""
    print(f"mode={report['mode']} arch={report['arch']} batch={report['batch_size']} size={report['image_size']} "
          f"device={report['device_target']} workers={report.get('workers', 1)} "
          f"load={report['env']['loadavg_1min']:.2f}")
    print(f"{'side':<10}{'measure':<28}{'value':>12}")
    for side in ("ours", "theirs", "baseline"):
        for key, value in report.get(side, {}).items():
            print(f"{side:<10}{key:<28}{value:>12.2f}")
    if "theirs_model" in report:
        print(f"{'theirs':<10}model: {report['theirs_model']['name']}, {report['theirs_model']['params']:,} params")
    for key, value in report.get("ratios", {}).items():
        print(f"{'ratio':<10}{key:<28}{value:>12.3f}")
    if "ratio" in report:
        label = f"ours/{report['ab']}=0 img/s" if "ab" in report else "ours/theirs img/s"
        print(f"{'ratio':<10}{label:<28}{report['ratio']:>12.3f}")


if __name__ == "__main__":
    sys.exit(cli_main(main)())
