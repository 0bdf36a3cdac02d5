"""What the training loop does around its steps: ModelZoo-shaped log lines, metrics.jsonl, checkpoints (rank 0),
evaluation with best.ckpt.

The loop (common.training.loop) calls these hooks directly; they hold no MindSpore Model machinery so that the loop
can stop after any step (signals, non-finite loss) and resume at any step.
"""
from __future__ import annotations

import json
import os
import resource
import time
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import UserError
from ..weights.checkpoint import checkpoint_name, list_checkpoints, save_checkpoint_atomic


def rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StepLogger:
    """Prints the ModelZoo's training log lines (rank 0 only), the shapes users grep.

    Every `log_interval` steps and at the end of an epoch: `epoch: E step: S, loss is L` and
    `epoch[E-1], iter[G], loss:L, mean_fps:F imgs/sec` (G counts from 0 over the whole run, as in the ModelZoo);
    at the end of an epoch: `epoch time: X ms, per step time: Y ms`. With `epoch_size`, a third line at each log
    interval says how far the run is and when the epoch and the run end, from the mean step time of the epoch so far
    (evaluation time not included): `epoch: [E/N], step: [S/T], per step time: Y ms, epoch ETA: H:MM:SS, run ETA:
    H:MM:SS`.
    """

    def __init__(self, steps_per_epoch: int, global_batch: int, log_interval: int, enabled: bool = True,
                 epoch_size: int = 0) -> None:
        self.epoch_size = epoch_size
        self.steps_per_epoch, self.global_batch = steps_per_epoch, global_batch
        self.log_interval, self.enabled = log_interval, enabled
        self.epoch_start = self.window_start = 0.0
        self.window_steps = self.epoch_steps = 0
        self.losses: List[float] = []

    def begin_epoch(self) -> None:
        self.epoch_start = self.window_start = time.perf_counter()
        self.window_steps = self.epoch_steps = 0
        self.losses = []

    def step(self, epoch: int, step: int, loss: float) -> None:
        """After step `step` (1-based within epoch `epoch`, 1-based) with its loss."""
        self.steps(epoch, step, [loss])

    def steps(self, epoch: int, step: int, losses: Sequence[float]) -> None:
        """After the steps ending with `step`, with their losses in order: the loop fetches losses from the device
        once per log window, not every step."""
        self.window_steps += len(losses)
        self.epoch_steps += len(losses)
        self.losses.extend(losses)
        if not self.enabled or not losses or (step % self.log_interval and step != self.steps_per_epoch):
            return
        loss = losses[-1]
        now = time.perf_counter()
        fps = self.window_steps * self.global_batch / max(now - self.window_start, 1e-9)
        global_iter = (epoch - 1) * self.steps_per_epoch + step - 1
        print(f"epoch: {epoch} step: {step}, loss is {loss:.4f}", flush=True)
        print(f"epoch[{epoch - 1}], iter[{global_iter}], loss:{loss:.4f}, mean_fps:{fps:.2f}imgs/sec", flush=True)
        if self.epoch_size:
            print(self.progress_line(epoch, step, now), flush=True)
        self.window_start, self.window_steps = now, 0

    def progress_line(self, epoch: int, step: int, now: float) -> str:
        """Where the run is and its ETAs, from the mean step time of this epoch's steps so far."""
        per_step = (now - self.epoch_start) / max(self.epoch_steps, 1)
        left_in_epoch = self.steps_per_epoch - step
        left_in_run = left_in_epoch + (self.epoch_size - epoch) * self.steps_per_epoch
        return (f"epoch: [{epoch}/{self.epoch_size}], step: [{step}/{self.steps_per_epoch}], per step time: "
                f"{per_step * 1000:.3f} ms, epoch ETA: {_clock(left_in_epoch * per_step)}, run ETA: "
                f"{_clock(left_in_run * per_step)}")

    def end_epoch(self) -> Dict[str, float]:
        """Prints the epoch time line; returns seconds, mean loss and images per second of the epoch."""
        seconds = time.perf_counter() - self.epoch_start
        steps = max(self.epoch_steps, 1)
        if self.enabled:
            print(f"epoch time: {seconds * 1000:.3f} ms, per step time: {seconds * 1000 / steps:.3f} ms", flush=True)
        finite = [v for v in self.losses if v == v and abs(v) != float("inf")]
        return {"seconds": seconds, "loss": sum(finite) / len(finite) if finite else float("nan"),
                "img_per_sec": self.epoch_steps * self.global_batch / max(seconds, 1e-9)}


def _clock(seconds: float) -> str:
    """H:MM:SS (hours may exceed 24), rounded to the second."""
    total = int(round(max(seconds, 0.0)))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


class MetricsWriter:
    """Appends one JSON object per epoch to OUT/metrics.jsonl (rank 0 only); flushed and fsynced per line."""

    def __init__(self, output_dir: str, enabled: bool = True) -> None:
        self.path = os.path.join(output_dir, "metrics.jsonl")
        self.enabled = enabled

    def write(self, record: Dict) -> None:
        if not self.enabled:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise UserError(f"could not append to '{self.path}' ({exc.strerror}); free disk space or choose a "
                            f"writable --output_dir") from None


class CheckpointSaver:
    """Rank 0 writes `{arch}-{epoch}_{step}.ckpt` atomically into the run folder and keeps the newest N.

    A checkpoint holds the network and the training state (optimizer moments, global step, loss scale, skipped
    steps) plus epoch_num/step_num/steps_per_epoch, everything an exact resume needs. An old file is removed only
    after the new one is complete. `best.ckpt` holds the network alone.
    """

    def __init__(self, output_dir: str, arch: str, keep_max: int, enabled: bool = True) -> None:
        self.output_dir, self.arch, self.keep_max, self.enabled = output_dir, arch, keep_max, enabled
        self.best_top1 = -1.0
        self.last_path: Optional[str] = None

    def save(self, step_cell, epoch: int, step: int, steps_per_epoch: int) -> Optional[str]:
        """Checkpoint after `step` steps of epoch `epoch` (both 1-based in the name, as the ModelZoo's)."""
        if not self.enabled:
            return None
        path = os.path.join(self.output_dir, checkpoint_name(self.arch, epoch, step))
        save_checkpoint_atomic(step_cell, path, append_dict={"epoch_num": epoch, "step_num": step,
                                                             "steps_per_epoch": steps_per_epoch})
        self.last_path = path
        for _, _, old in list_checkpoints(self.output_dir, self.arch)[:-self.keep_max]:
            os.remove(old)
        return path

    def save_best(self, net, top1: float) -> bool:
        """Write best.ckpt (network only) when `top1` beats the best so far; True when written."""
        if top1 <= self.best_top1:
            return False
        self.best_top1 = top1
        if self.enabled:
            save_checkpoint_atomic(net, os.path.join(self.output_dir, "best.ckpt"))
        return True


class EvalCallback:
    """Evaluates the val split every `eval_interval` epochs from `eval_start_epoch` (common.inference.evaluate, all
    ranks), keeping best.ckpt."""

    def __init__(self, net, cfg, dist, saver: CheckpointSaver,
                 evaluate: Optional[Callable] = None) -> None:
        self.net, self.cfg, self.dist, self.saver = net, cfg, dist, saver
        self._evaluate = evaluate

    def due(self, epoch: int) -> bool:
        cfg = self.cfg
        return cfg.run_eval and (epoch >= cfg.eval_start_epoch and (epoch - cfg.eval_start_epoch)
                                 % cfg.eval_interval == 0 or epoch == cfg.epoch_size)

    def __call__(self, epoch: int) -> Optional[Dict[str, float]]:
        if not self.due(epoch):
            return None
        if self._evaluate is None:
            from ..inference.evaluate import evaluate_network  # imported late: eval code is only needed with run_eval

            self._evaluate = evaluate_network
        result = self._evaluate(self.net, self.cfg, self.dist, split="val")
        if self.saver.save_best(self.net, result["top1"]) and self.dist.is_main:
            print(f"epoch {epoch}: best top-1 so far {100 * result['top1']:.2f}%, saved best.ckpt", flush=True)
        return result
