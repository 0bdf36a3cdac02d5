"""Top-1 / top-5 evaluation of a classifier on an ImageFolder split, single device or data parallel.

Every image of the split is counted exactly once: rank r of n evaluates images r, r + n, r + 2n, ... (an explicit
index list, so no shard is padded with repeated images), and the last partial batch is kept (padded with zeros to
the batch shape, the padding rows not scored); the data come from common.data.pipeline, the builder training uses.
The per-rank counts are summed with one all-reduce; nothing is passed between ranks through files. With
--model_file the network is an exported MINDIR/ONNX file (common.inference.network.ModelFileNet), scored the same
way, with the preprocessing recorded beside it (common.data.presets). Rank 0 prints the ModelZoo lines users grep:

    after allreduce eval: top1_correct=39666, tot=49984,acc=79.36%(TOP1)
    after allreduce eval: top5_correct=46440, tot=49984,acc=92.91%(TOP5)
    acc=79.36%(TOP1)
    acc=92.91%(TOP5)
    Inference Performance: 218.14 img/sec
"""
from __future__ import annotations

import os
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..commands import EVAL_OPTIONS as OPTIONS
from ..config import SCHEMA
from ..data.folder import first_undecodable, scan_image_folder, split_dir
from ..data.pipeline import create_dataset, eval_source
from ..data.presets import apply_recorded, preset_of, record, sidecar_path
from ..errors import UserError
from ..fileio import check_writable_folder, write_json
from .network import check_checkpoint_file, check_model_file, command_line_keys, load_inference_network, load_model_file

TOPK = 5


def count_correct(logits: np.ndarray, labels: np.ndarray, k: int = TOPK) -> Tuple[int, int]:
    """(top-1 hits, top-k hits) of one batch; k is capped at the number of classes."""
    logits = logits.astype(np.float32).reshape(len(labels), -1)
    k = min(k, logits.shape[1])
    top1 = int((logits.argmax(axis=1) == labels).sum())
    topk = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return top1, int((topk == labels[:, None]).any(axis=1).sum())


def _all_reduce_sum(values: List[float]) -> List[float]:
    """Sum a few numbers over all ranks of the default group (SUM is the one reduction the CPU backend has;
    float32 holds counts exactly up to 2**24 and is what every backend reduces)."""
    import mindspore as ms
    from mindspore import ops

    out = ops.AllReduce(ops.ReduceOp.SUM)(ms.Tensor(np.array(values, dtype=np.float32)))
    return [float(v) for v in out.asnumpy()]


def format_lines(result: Dict[str, float]) -> List[str]:
    """The ModelZoo's evaluation log lines (see the module doc) for one result."""
    top1, top5, tot = result["top1_correct"], result["top5_correct"], result["total"]
    return [f"after allreduce eval: top1_correct={top1}, tot={tot},acc={100 * result['top1']:.2f}%(TOP1)",
            f"after allreduce eval: top5_correct={top5}, tot={tot},acc={100 * result['top5']:.2f}%(TOP5)",
            f"acc={100 * result['top1']:.2f}%(TOP1)",
            f"acc={100 * result['top5']:.2f}%(TOP5)",
            f"Inference Performance: {result['img_per_sec']:.2f} img/sec"]


def _score(net, dataset, batch_size: int) -> Tuple[int, int, int, int, float]:
    """(top-1 hits, top-5 hits, images, images timed, seconds timed) of one rank's batches.

    A short last batch is padded with zeros to the full batch and only its real rows are scored, so graph mode
    compiles one shape. Timing starts after the first batch, which includes the compile, when there are more.
    """
    import mindspore as ms

    top1 = top5 = seen = timed = 0
    start = time.perf_counter()
    for step, (images, labels) in enumerate(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)):
        if step == 1:
            start, timed = time.perf_counter(), 0
        real = len(labels)
        if real < batch_size:
            images = np.concatenate([images, np.zeros((batch_size - real, *images.shape[1:]), images.dtype)])
        logits = net(ms.Tensor(images)).asnumpy()[:real]
        hit1, hit5 = count_correct(logits, labels)
        top1, top5, seen, timed = top1 + hit1, top5 + hit5, seen + real, timed + real
    return top1, top5, seen, timed, (time.perf_counter() - start if seen else 0.0)


def evaluate_network(net, cfg, dist, split: str = "val", log: bool = True) -> Dict[str, float]:
    """Evaluate `net` on `split` of cfg.data_dir, over all ranks of `dist` (common.context.DistInfo).

    Returns top1_correct, top5_correct, total (ints, summed over ranks), top1 and top5 (fractions in [0, 1]) and
    img_per_sec (all ranks' images per second of the slowest rank, the first batch, which holds the graph compile,
    left out when there are more). With `log`, rank 0 prints the lines of `format_lines`. The network's train flag
    is restored afterwards.
    """
    samples, _ = scan_image_folder(split_dir(cfg.data_dir, split))
    source = eval_source(samples, dist.rank, dist.group_size)
    dataset, _ = create_dataset(cfg, split, False, dist.rank, dist.group_size, source=source)
    was_training = net.training
    net.set_train(False)
    top1 = top5 = seen = timed_images = 0
    elapsed = 0.0
    try:
        if dataset is not None:
            top1, top5, seen, timed_images, elapsed = _score(net, dataset, cfg.eval_batch_size or cfg.batch_size)
        bad = next(iter(source.bad), "")
    except RuntimeError:  # a file with an image header and end whose data MindSpore cannot decode
        bad = first_undecodable(source.samples)
        if not bad:
            raise
    finally:
        net.set_train(was_training)
    bad_ranks = 1 if bad else 0
    if dist.group_size > 1:
        # one all-reduce: counts summed; each rank's time sits in its own slot, so the sum lists them all. Every
        # rank takes part even after a bad image, so none waits forever, and then all of them stop.
        times = [0.0] * dist.group_size
        times[dist.rank] = elapsed
        reduced = _all_reduce_sum([top1, top5, seen, timed_images, bad_ranks, *times])
        top1, top5, seen, timed_images, bad_ranks = (int(round(v)) for v in reduced[:5])
        elapsed = max(reduced[5:])
    if bad_ranks:
        where = f"image '{bad}'" if bad else "an image (named in another rank's log)"
        raise UserError(f"{where} of the {split} split cannot be decoded; replace or remove it (every image of the "
                        f"split is evaluated)")
    result = {"top1_correct": top1, "top5_correct": top5, "total": seen,
              "top1": top1 / seen if seen else 0.0, "top5": top5 / seen if seen else 0.0,
              "img_per_sec": timed_images / elapsed if elapsed > 0 else 0.0}
    if log and dist.rank == 0:
        print("\n".join(format_lines(result)), flush=True)
    return result


def result_path(cfg, argv: Sequence[str]) -> str:
    """eval_<checkpoint or model file name>.json next to that file, or in --output_dir when the user chose one."""
    chosen = "output_dir" in command_line_keys(argv, OPTIONS) or cfg.output_dir != SCHEMA["output_dir"].default
    evaluated = cfg.get("model_file") or cfg.checkpoint_path
    folder = cfg.output_dir if chosen else os.path.dirname(os.path.abspath(evaluated))
    stem = os.path.splitext(os.path.basename(evaluated))[0]
    return os.path.join(folder, f"eval_{stem}.json")


def check_labels(data_classes: Sequence[str], num_classes: int, where: str) -> None:
    """Refuse a split with more class folders than the model has outputs (its labels would be out of range)."""
    if len(data_classes) > num_classes:
        raise UserError(f"'{where}' has {len(data_classes)} class folders but the model has num_classes="
                        f"{num_classes}; pass the checkpoint trained on these classes")


def _file_network(cfg, given: set):
    """The exported file as a network; the eval batch and crop follow the file's input shape (a fixed-batch file
    takes only its own batch; its crop is the exported height)."""
    net = load_model_file(cfg.model_file)
    if net.batch_size > 0:
        if "batch_size" in given and (cfg.eval_batch_size or cfg.batch_size) != net.batch_size:
            print(f"'{cfg.model_file}' takes batches of {net.batch_size} only; evaluating with that batch size "
                  f"(export with --dynamic_batch true for any batch)", flush=True)
        cfg.eval_batch_size = net.batch_size
    if net.input_hw and net.input_hw[0] > 0 and "image_size" not in given:
        cfg.image_size = net.input_hw[0]
    cfg.num_classes = net.num_classes or cfg.num_classes
    return net


def run(model, cfg, argv: Sequence[str]) -> int:
    """<model>/eval.py: load the checkpoint (or exported file), evaluate the val split, print and save the figures."""
    if not cfg.model_file and not cfg.checkpoint_path:
        raise UserError("--checkpoint_path is not set; pass the .ckpt file to evaluate (or --model_file with an "
                        "exported .mindir/.onnx file)")
    # a wrong path or file answers before MindSpore is loaded (init_context) and the data are set up
    if cfg.model_file:
        check_model_file(cfg.model_file)
    else:
        check_checkpoint_file(cfg, argv, OPTIONS)
    root = split_dir(cfg.data_dir, "val")
    data_classes = scan_image_folder(root)[1]
    if not cfg.model_file:  # the class count is settled (a file's comes with its network, below)
        check_labels(data_classes, cfg.num_classes, root)
    given = command_line_keys(argv, OPTIONS)
    evaluated = cfg.model_file or cfg.checkpoint_path
    recorded = apply_recorded(cfg, evaluated, given)

    from ..context import init_context

    # before the network is built: an unwritable result folder must not cost a whole evaluation
    check_writable_folder(os.path.dirname(result_path(cfg, argv)), "the eval result folder (--output_dir)")

    dist = init_context(cfg.device_target, cfg.mode, cfg.jit_level, cfg.device_id)
    net = _file_network(cfg, given) if cfg.model_file else load_inference_network(cfg, argv, OPTIONS)
    check_labels(data_classes, cfg.num_classes, root)
    preset = preset_of(cfg)
    if dist.rank == 0:
        where = f" (recorded in {sidecar_path(evaluated)})" if recorded and "eval_preset" not in given else ""
        print(f"eval preprocessing: preset {preset.name}{where}, resize {preset.resize}, crop {preset.crop}, "
              f"{preset.interpolation}, {preset.backend} decode/resize", flush=True)
    result = evaluate_network(net, cfg, dist, "val")
    if dist.rank == 0:
        what = {"model_file": os.path.abspath(cfg.model_file)} if cfg.model_file else {
            "checkpoint": os.path.abspath(cfg.checkpoint_path)}
        path = write_json(result_path(cfg, argv), {
            "arch": cfg.arch, **what, "data_dir": os.path.abspath(root), "device_target": cfg.device_target,
            "group_size": dist.group_size, "eval_preset": record(preset), **result})
        print(f"eval results written to {path}", flush=True)
    return 0
