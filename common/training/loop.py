"""The training loop behind every model's train.py: `python <model>/train.py --data_dir DIR ...`.

`main` resolves the config, sets up the device and ranks, builds data, network, step (common.training.step) and
hooks, optionally resumes, and runs the epochs, stepping from Python so it can stop, checkpoint and resume at any
step.
"""
from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from typing import List, Optional, Sequence, Tuple

import mindspore as ms

from ..config import dump_config
from ..context import launcher_rank
from ..cpu_ops import native_ops
from ..data.folder import CheckedImageSource, check_data_files, scan_image_folder, split_dir
from ..data.pipeline import train_shard, train_source
from ..errors import UserError
from ..fileio import write_json
from ..inference.class_names import CLASS_NAMES_FILE
from ..weights.checkpoint import read_checkpoint
from .accumulate import accumulation_config
from .compile_cache import use_compile_cache
from .finetune import freeze_layers, trainable_summary
from .hooks import CheckpointSaver, MetricsWriter, StepLogger, rss_mb
from .lr_schedule import lr_notes
from .preflight import check_output_dir
from .step import build_train_step, effective_amp_level
from .sync_bn import apply_sync_bn

# Exit status of a run stopped by a signal: 128 + signal number, as a shell reports it.
SIGNAL_EXIT = 128


class StopRequest:
    """SIGTERM/SIGINT handler: the loop finishes the current step, checkpoints and exits non-zero."""

    def __init__(self) -> None:
        self.signum = 0

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.signum:  # a second signal: stop now
            sys.exit(SIGNAL_EXIT + signum)
        self.signum = signum
        print(f"received {signal.Signals(signum).name}: finishing the current step, then saving a checkpoint",
              file=sys.stderr, flush=True)


def run(model, cfg, argv: Sequence[str]) -> int:
    """<model>/train.py with the resolved `cfg` (common.training.preflight.prepare_train has checked it and copied a
    ModelArts job's data in), the run folder copied out after; returns the exit status."""
    from .. import modelarts

    try:
        return train(cfg, model)
    finally:
        modelarts.sync_out(cfg)


def train(cfg, model) -> int:
    """Run (or resume) training of `model` (a common.entry.ModelFace) as configured; returns 0, or 128 + signal
    when stopped by SIGTERM/SIGINT."""
    from ..context import init_context
    from .resume import (
        FROM_CONFIG,
        checkpoint_padding,
        find_resume_checkpoint,
        load_pretrained,
        read_resume_checkpoint,
        restore_training_state,
    )

    # --grad_accum_steps K: data, LR schedule and step counts see the optimizer's batch (common.training.accumulate)
    run_cfg, cfg = cfg, accumulation_config(cfg)
    samples, classes = scan_image_folder(split_dir(cfg.data_dir, "train"))  # scanned by the preflight: cached
    # checkpoints are read and checked before device set-up: a wrong file fails in seconds, not after a build
    resume_path, resume_params = find_resume_checkpoint(cfg.resume, cfg.output_dir, cfg.arch)
    if resume_path:
        resume_params = read_resume_checkpoint(resume_path, cfg.num_classes, resume_params)
    pretrained_params = read_checkpoint(cfg.pretrained) if cfg.pretrained else None
    if not cfg.pool_padding:  # build the network with the pooling its starting checkpoint was trained with
        start = resume_params if resume_path else pretrained_params
        cfg.pool_padding = checkpoint_padding(start) if start is not None else "symmetric"
    if cfg.deterministic:
        from ..compat import set_deterministic

        set_deterministic(True)  # before init() inside init_context, so collectives are covered
    dist = init_context(cfg.device_target, cfg.mode, cfg.jit_level, cfg.device_id)
    # the preflight checked the run folder and the shard with the rank the launcher gave; a launcher that gave none,
    # or another, leaves them to here, where the ranks are known
    if launcher_rank() != (dist.rank, dist.group_size):
        if dist.is_main:
            check_output_dir(cfg.output_dir, cfg.arch, cfg.resume)
        if cfg.strict_data:
            check_data_files(train_shard(samples, dist.rank, dist.group_size, cfg.seed), cfg.reader_threads)
    ms.set_seed(cfg.seed)
    global_batch = cfg.batch_size * dist.group_size
    steps_per_epoch = len(samples) // global_batch
    if steps_per_epoch == 0:
        raise UserError(f"the training split has {len(samples)} images, fewer than one global batch of "
                        f"{global_batch}; lower --batch_size")

    amp_level = effective_amp_level(cfg, cfg.device_target)
    if dist.is_main:
        for line in lr_notes(cfg, dist.group_size) + [_amp_note(cfg, amp_level)]:
            print(line, flush=True)
    # float16 on CPU (forced) needs MindSpore's own kernels: the zoo's CPU operators are float32 only
    with native_ops() if cfg.device_target == "CPU" and amp_level != "O0" else contextlib.nullcontext():
        net = model.get_network(cfg)
    if cfg.pretrained:
        note = load_pretrained(net, cfg.pretrained, cfg.num_classes, pretrained_params)
        if dist.is_main:
            print(note, flush=True)
    # fine-tuning controls (issue 18, common.training.finetune): frozen before the optimizer picks its parameters
    freeze_layers(net, cfg.freeze_layers)
    sync_note = apply_sync_bn(net, cfg, dist)
    if dist.is_main:
        print(trainable_summary(net, cfg.freeze_layers) + (f"\n{sync_note}" if sync_note else ""), flush=True)
    step_cell = build_train_step(net, cfg, steps_per_epoch, dist.group_size, loss=model.get_loss(cfg),
                                 lr=model.get_lr(cfg, steps_per_epoch, dist.group_size))
    start_epoch, start_step = 0, 0
    if resume_path:
        # a fixed loss scale is a setting (this run's value wins); a dynamic one is state and carries on
        # the in-a-row counters are per-process: a checkpoint of an older step lacks them, and a run restarts them
        keep = FROM_CONFIG + ("skipped_steps_in_a_row", "skipped_steps_longest_run") + (
            ("scale_sense",) if cfg.loss_scale_type == "fixed" else ())
        start_epoch, start_step = restore_training_state(step_cell, net, resume_path, steps_per_epoch, keep,
                                                           resume_params)
        if dist.is_main:
            print(f"resumed from '{resume_path}': continuing at epoch {start_epoch + 1} step {start_step + 1}",
                  flush=True)
    elif cfg.resume == "auto" and dist.is_main:
        print(f"resume auto: no checkpoint in '{cfg.output_dir}' yet, starting a new run", flush=True)
    val_images = len(scan_image_folder(split_dir(cfg.data_dir, "val"))[0]) if cfg.run_eval else 0
    note = use_compile_cache(cfg, step_cell, {"train_images": len(samples), "val_images": val_images,
                                              "rank": dist.rank, "group_size": dist.group_size, "amp": amp_level})
    if note and dist.is_main:
        print(note, flush=True)
    if dist.is_main:
        dump_config(run_cfg, cfg.output_dir)
        # predict.py and eval read the class names of a folder-trained model from beside its checkpoints
        write_json(os.path.join(cfg.output_dir, CLASS_NAMES_FILE), classes)
    return _run_loop(cfg, model, dist, net, step_cell, samples, steps_per_epoch, (start_epoch, start_step),
                     resume_path)


def _run_loop(cfg, model, dist, net, step_cell, samples, steps_per_epoch: int, start: Tuple[int, int],
              resumed_from: Optional[str]) -> int:
    """The epochs. Each runs stepped from Python (`_epoch_stepped`) or, with dataset_sink_mode on Ascend/GPU, in
    sink chunks (common.training.sink). Either way the device is asked for losses and overflow counters only at
    chunk ends (every log_interval steps, or the sink chunk, and at the end of an epoch), and in multi-rank runs the
    ranks agree on a stop request at those same points (every rank runs the same steps, so they meet there)."""
    from . import sink

    start_epoch, start_step = start
    source = train_source(samples, cfg, dist.rank, dist.group_size)
    saver = CheckpointSaver(cfg.output_dir, cfg.arch, cfg.keep_checkpoint_max, enabled=dist.is_main)
    saver.last_path = resumed_from  # the last good checkpoint until this run writes one
    logger = StepLogger(steps_per_epoch, cfg.batch_size * dist.group_size, cfg.log_interval, enabled=dist.is_main,
                        epoch_size=cfg.epoch_size)
    run = EpochRun(cfg, dist, step_cell, saver, logger, StopRequest(), steps_per_epoch, source)
    metrics = MetricsWriter(cfg.output_dir, enabled=dist.is_main)
    evaluate = model.eval_callback(net, cfg, dist, saver)
    chunk = sink.chunk_size(steps_per_epoch, cfg.log_interval)
    use_sink = sink.sink_applies(cfg)
    if dist.is_main and cfg.dataset_sink_mode:
        print(sink.sink_note(cfg, use_sink, chunk), flush=True)
    for epoch in range(start_epoch + 1, cfg.epoch_size + 1):
        # A fresh pipeline per epoch, seeded by the epoch, so a resumed run sees the same order and augmentations.
        dataset, _ = model.create_dataset(cfg, "train", True, dist.rank, dist.group_size, seed=cfg.seed + epoch,
                                          source=source)
        bad_before, skipped_before = source.skipped, int(step_cell.skipped_steps.asnumpy())
        run.skipped_seen = skipped_before
        logger.begin_epoch()
        skip = start_step if epoch == start_epoch + 1 else 0
        if use_sink and skip % chunk == 0:
            stopped = sink.run_epoch(run, dataset, epoch, skip, chunk)
        else:  # a checkpoint of a stepped run between chunk ends: this epoch is stepped, the next ones sink again
            stopped = _epoch_stepped(run, dataset, epoch, skip)
        del dataset
        if stopped:
            return stopped
        gc.collect()  # drop the epoch's pipeline before the next one is built (flat memory over epochs)
        stats = logger.end_epoch()
        record = {"epoch": epoch, "loss": stats["loss"], "lr": _lr_of(step_cell, epoch * steps_per_epoch - 1),
                  "img_per_sec": stats["img_per_sec"], "seconds": stats["seconds"]}
        _report_skips(dist, source, bad_before, step_cell, skipped_before, epoch, record)
        if epoch % cfg.save_checkpoint_epochs == 0 or epoch == cfg.epoch_size:
            saver.save(step_cell, epoch, steps_per_epoch, steps_per_epoch)
        result = evaluate(epoch)
        if result is not None:
            record.update(top1=result["top1"], top5=result["top5"])
        record["rss_mb"] = round(rss_mb(), 1)
        metrics.write(record)
    return 0


class EpochRun:
    """What an epoch needs, stepped or sunk; `chunk_end` is the one place where a chunk of steps is judged."""

    def __init__(self, cfg, dist, step_cell, saver: CheckpointSaver, logger: StepLogger, stop: StopRequest,
                 steps_per_epoch: int, source: CheckedImageSource) -> None:
        self.cfg, self.dist, self.step_cell, self.saver, self.logger = cfg, dist, step_cell, saver, logger
        self.stop, self.steps_per_epoch, self.source = stop, steps_per_epoch, source
        self.skipped_seen = 0

    def chunk_end(self, epoch: int, step: int, losses: List[float], agree: bool = True) -> int:
        """After the steps ending with `step`: log them, stop on too many non-finite steps in a row, and return the
        signal of an agreed stop request (0: go on). `agree`: all ranks are at this point (an all-reduce)."""
        from ..context import any_rank

        self.skipped_seen = _check_nonfinite(self.cfg, self.step_cell, losses[-1], epoch, step, self.saver,
                                             self.skipped_seen, self.dist)
        self.logger.steps(epoch, step, losses)
        return any_rank(self.stop.signum, self.dist.group_size) if agree else self.stop.signum

    def stopped(self, signum: int, epoch: int, step: int) -> int:
        """Checkpoint (rank 0) after an agreed stop at `step`; returns the exit status."""
        from ..context import any_rank

        path = self.saver.save(self.step_cell, epoch, step, self.steps_per_epoch)
        # a barrier: no rank exits (and has its launcher end the job) before rank 0's checkpoint is complete
        any_rank(0, self.dist.group_size)
        if self.dist.is_main:
            print(f"error: stopped by {signal.Signals(signum).name} at epoch {epoch} step {step}; "
                  f"checkpoint '{path}' written; continue with --resume auto", file=sys.stderr, flush=True)
        return SIGNAL_EXIT + signum


def _epoch_stepped(run: EpochRun, dataset, epoch: int, skip: int) -> int:
    """One epoch stepped from Python from step `skip`; returns the exit status of a stop, else 0."""
    iterator = dataset.create_tuple_iterator(num_epochs=1)
    window: List = []  # loss tensors of the steps not fetched yet
    single = run.dist.group_size == 1
    for index, (images, labels) in enumerate(iterator):
        if index < skip:
            continue  # replay the data of the steps done before the checkpoint (keeps augmentation RNG exact)
        if index >= run.steps_per_epoch:
            break
        # Every step: a data pipeline's C++ launch replaces the process's SIGTERM handler (MindSpore 2.8), so
        # ours is put back once the batch is in hand (a few microseconds).
        run.stop.install()
        window.append(run.step_cell(images, labels))
        run.source.raise_if_bad()
        step = index + 1
        fetch = step % run.cfg.log_interval == 0 or step == run.steps_per_epoch
        if not fetch and not (run.stop.signum and single):  # one process stops at once, ranks at a chunk end
            continue
        losses = [float(v) for v in ms.ops.stack(window).asnumpy()]  # one device sync per window
        window = []
        signum = run.chunk_end(epoch, step, losses, agree=fetch)
        if signum:
            return run.stopped(signum, epoch, step)
    return 0


def _amp_note(cfg, amp_level: str) -> str:
    if cfg.device_target == "CPU" and amp_level != cfg.amp_level:
        return (f"note: amp_level {cfg.amp_level} is not applied on CPU: training runs float32 (MindSpore's float16 "
                f"CPU kernels are slower and overflowed at step 1); pass --amp_on_cpu true to force it")
    if amp_level == "O0":
        return "amp: O0, training runs float32"
    return f"amp: {amp_level} float16 (BatchNorm and the loss float32)"


def _lr_of(step_cell, step: int) -> float:
    values = step_cell.lr_values
    return float(values[min(step, len(values) - 1)])


def _check_nonfinite(cfg, step_cell, loss: float, epoch: int, step: int, saver: CheckpointSaver, skipped_seen: int,
                     dist) -> int:
    """After a log window: log the steps skipped in it, and stop once `nonfinite_patience` steps in a row were
    skipped, with a fixed loss scale as with a dynamic one (ModelZoo semantics: an isolated overflow step is skipped,
    not fatal). Returns the skipped-step count seen so far."""
    skipped = int(step_cell.skipped_steps.asnumpy())
    longest = int(step_cell.skipped_steps_longest_run.asnumpy())
    if skipped > skipped_seen and dist.is_main:
        print(f"warning: epoch {epoch}: {skipped - skipped_seen} step(s) up to step {step} skipped for non-finite "
              f"gradients ({_scale_words(cfg, step_cell)})", flush=True)
    if longest >= cfg.nonfinite_patience:
        last = f"the last good checkpoint is '{saver.last_path}'" if saver.last_path else "no checkpoint was written"
        raise UserError(f"training diverged: {longest} steps in a row with non-finite gradients up to epoch {epoch} "
                        f"step {step} (nonfinite_patience {cfg.nonfinite_patience}, last loss {loss}), "
                        f"{_scale_words(cfg, step_cell)}; {last}; lower --lr, or use --loss_scale_type dynamic with "
                        f"AMP")
    # the longest run restarts from the current one, so the next window is judged on its own steps
    step_cell.skipped_steps_longest_run.set_data(ms.Tensor(step_cell.skipped_steps_in_a_row.asnumpy()))
    return skipped


def _scale_words(cfg, step_cell) -> str:
    if cfg.loss_scale_type == "fixed":
        return f"with the fixed loss scale {cfg.loss_scale:g}"
    return f"dynamic loss scale now {step_cell.loss_scale:g}"


def _report_skips(dist, source: CheckedImageSource, bad_before: int, step_cell, skipped_before: int, epoch: int,
                  record: dict) -> None:
    bad = source.skipped - bad_before
    skipped = int(step_cell.skipped_steps.asnumpy()) - skipped_before
    record.update(bad_images=bad, skipped_steps=skipped, loss_scale=step_cell.loss_scale)
    if not dist.is_main:
        return
    if bad:
        print(f"warning: epoch {epoch}: {bad} unreadable image read(s) skipped (files named above); pass --strict_data "
              f"to stop on them instead", file=sys.stderr, flush=True)
    if skipped:
        print(f"warning: epoch {epoch}: {skipped} step(s) skipped for non-finite gradients; loss scale now "
              f"{step_cell.loss_scale:g}", flush=True)
