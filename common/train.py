"""Training entry point shared by the model folders: `python <model>/train.py --data_dir DIR ...`.

`build_train_step` is the exact step the loop runs (scripts/benchmark.py times it). `main` resolves the config,
sets up the device and ranks, builds data, network, step and callbacks, optionally resumes, and runs the loop.
"""
from __future__ import annotations

import gc
import math
import os
import signal
import sys
from typing import List, Optional, Sequence, Tuple

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore import dtype as mstype

from .callbacks import CheckpointSaver, EvalCallback, MetricsWriter, StepLogger, list_checkpoints, rss_mb
from .checkpoint_io import check_writable_folder
from .config import dump_config, entry_config
from .dataset import CheckedImageSource, check_data_files, create_dataset, scan_image_folder, split_dir
from .errors import UserError, cli_main
from .inference import CLASS_NAMES_FILE, write_json
from .loss import CrossEntropySmooth
from .lr_schedule import build_lr
from .optim import create_optimizer

USAGE = ("usage: python <model>/train.py --data_dir DIR --device_target {Ascend,GPU,CPU} --output_dir OUT "
         "[--<any option> VALUE] [--config_path FILE]")
# Exit status of a run stopped by a signal: 128 + signal number, as a shell reports it.
SIGNAL_EXIT = 128


_unscale = ops.MultitypeFuncGraph("unscale")
_finite_probe = ops.MultitypeFuncGraph("finite_probe")


@_unscale.register("Tensor", "Tensor")
def _unscale_tensor(scale, grad):
    return grad * ops.cast(ops.reciprocal(scale), ops.dtype(grad))


@_finite_probe.register("Tensor")
def _finite_probe_tensor(grad):
    """A scalar that is NaN or inf when any entry of `grad` is (a NaN or inf propagates through the sums).

    Summed along the last axis of a 2-d view first: MindSpore 2.8's CPU ReduceSum over all axes of a large tensor
    and `isfinite(grad).all()` each cost ~150 ms per ResNeXt-50 step, the row sums ~8 ms
    (benchmarks/RESULTS.md, round 3).
    """
    rows = grad.reshape(1, -1) if grad.ndim <= 1 else grad.reshape(grad.shape[0], -1)
    return ops.cast(rows, mstype.float32).sum(axis=1).sum()


class TrainStep(nn.TrainOneStepCell):
    """One optimizer step with loss scaling: `step(images, labels) -> loss`.

    The loss is scaled by `scale_sense`, gradients are unscaled and (in data-parallel runs) averaged, and the update
    is skipped when any gradient or the loss is not finite. The overflow test is `isfinite` of one sum over all
    gradients and the loss, so it runs on every backend (MindSpore's TrainOneStepWithLossScaleCell uses NPU status ops
    that the CPU graph lacks); a finite gradient whose entries sum beyond float32's range (3.4e38) also counts as an
    overflow. With `scale_update` (a DynamicLossScaleUpdateCell) the scale halves on overflow and grows after a clean
    window.
    `skipped_steps` counts skipped updates and `last_overflow` flags the latest one; both are saved in checkpoints.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scale: float,
                 scale_update: nn.Cell = None) -> None:
        super().__init__(network, optimizer)
        self.hyper_map = ops.HyperMap()
        self.scale_sense = Parameter(Tensor(loss_scale, mstype.float32), name="scale_sense", requires_grad=False)
        self.scale_update = scale_update
        self.skipped_steps = Parameter(Tensor(0, mstype.int32), name="skipped_steps", requires_grad=False)
        self.last_overflow = Parameter(Tensor(False, mstype.bool_), name="last_overflow", requires_grad=False)

    def construct(self, images, labels):
        loss = self.network(images, labels)
        scale = self.scale_sense
        sens = ops.ones_like(loss) * ops.cast(scale, ops.dtype(loss))
        grads = self.grad(self.network, self.weights)(images, labels, sens)
        grads = self.hyper_map(ops.partial(_unscale, scale), grads)
        grads = self.grad_reducer(grads)
        probe = ops.stack(self.hyper_map(_finite_probe, grads)).sum() + ops.cast(loss, mstype.float32)
        overflow = ops.logical_not(ops.isfinite(probe))
        if self.scale_update is not None:
            overflow = self.scale_update(self.scale_sense, overflow)
        loss = ops.depend(loss, ops.assign(self.last_overflow, overflow))
        loss = ops.depend(loss, ops.assign_add(self.skipped_steps, ops.cast(overflow, mstype.int32)))
        if not overflow:
            loss = ops.depend(loss, self.optimizer(grads))
        return loss

    @property
    def loss_scale(self) -> float:
        return float(self.scale_sense.asnumpy())


def build_train_step(net: nn.Cell, cfg, steps_per_epoch: int, group_size: int = 1) -> TrainStep:
    """The exact training step train.py runs, independent of data and callbacks (scripts/benchmark.py times it).

    Label-smoothing cross entropy (soft targets accepted), SGD momentum without decay on BN/bias, the per-step LR
    array of the recipe, AMP at cfg.amp_level, and a fixed or dynamic loss scale. Puts `net` in training mode.
    """
    lr = build_lr(cfg, steps_per_epoch, group_size)
    optimizer = create_optimizer(net, cfg, lr)
    if cfg.amp_level != "O0":
        ms.amp.auto_mixed_precision(net, cfg.amp_level)
    loss_net = nn.WithLossCell(net, CrossEntropySmooth(cfg.num_classes, cfg.label_smooth_factor))
    if cfg.loss_scale_type == "dynamic":
        update = nn.DynamicLossScaleUpdateCell(loss_scale_value=cfg.loss_scale, scale_factor=2, scale_window=2000)
    else:
        update = None
    step = TrainStep(loss_net, optimizer, cfg.loss_scale, update)
    step.lr_values = lr  # per-step LR array, for the logs
    step.set_train(True)
    return step


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


def check_output_dir(folder: str, arch: str, resume: str) -> None:
    """The run folder must be writable, and hold no checkpoints of another run unless resuming.

    Refusing (rather than renaming the new files, as MindSpore's ModelCheckpoint does) keeps the names the
    launchers and users expect and never mixes two runs.
    """
    check_writable_folder(folder, "--output_dir")
    if not resume and list_checkpoints(folder, arch):
        raise UserError(f"--output_dir '{folder}' already holds checkpoints of a run; pass --resume auto to continue "
                        f"it, or choose an empty --output_dir")


def check_classes(cfg, train_classes: List[str]) -> None:
    """num_classes must match the training class folders, and val/ (when present) must have the same classes."""
    if len(train_classes) != cfg.num_classes:
        raise UserError(f"the training data has {len(train_classes)} class folders but num_classes={cfg.num_classes}; "
                        f"pass --num_classes {len(train_classes)} (use --pretrained to fine-tune a model of "
                        f"another class count)")
    val_root = os.path.join(cfg.data_dir, "val")
    if not (cfg.run_eval or os.path.isdir(val_root)):
        return
    _, val_classes = scan_image_folder(split_dir(cfg.data_dir, "val"))
    if val_classes != train_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise UserError(f"train/ and val/ have different class folders (only in train: {only_train[:5]}, only in "
                        f"val: {only_val[:5]}); make both splits hold the same classes")


@cli_main
def main(model_dir: str, argv: Optional[Sequence[str]] = None) -> int:
    """Command line of <model>/train.py; returns the exit status."""
    _, cfg = entry_config(model_dir, argv, USAGE)
    if cfg is None:
        return 0
    from . import modelarts

    modelarts.sync_in(cfg)
    try:
        return train(cfg)
    finally:
        modelarts.sync_out(cfg)


def train(cfg) -> int:
    """Run (or resume) training as configured; returns 0, or 128 + signal when stopped by SIGTERM/SIGINT."""
    from .context import init_context
    from .models import create_model, read_checkpoint
    from .resume import (FROM_CONFIG, find_resume_checkpoint, load_pretrained, read_resume_checkpoint,
                         restore_training_state)

    samples, classes = scan_image_folder(split_dir(cfg.data_dir, "train"))
    check_classes(cfg, classes)
    # checkpoints are read and checked before device set-up: a wrong file fails in seconds, not after a build
    resume_path, resume_params = find_resume_checkpoint(cfg.resume, cfg.output_dir, cfg.arch)
    if resume_path:
        resume_params = read_resume_checkpoint(resume_path, cfg.num_classes, resume_params)
    pretrained_params = read_checkpoint(cfg.pretrained) if cfg.pretrained else None
    if cfg.deterministic:
        from .compat import set_deterministic

        set_deterministic(True)  # before init() inside init_context, so collectives are covered
    dist = init_context(cfg.device_target, cfg.mode, cfg.jit_level, cfg.device_id)
    if dist.is_main:
        check_output_dir(cfg.output_dir, cfg.arch, cfg.resume)
    if cfg.strict_data:
        check_data_files(samples)
    if cfg.dataset_sink_mode and dist.is_main:
        print("note: dataset_sink_mode is ignored: train.py steps from Python so that it can stop, checkpoint and "
              "resume at any step", flush=True)
    ms.set_seed(cfg.seed)
    global_batch = cfg.batch_size * dist.group_size
    steps_per_epoch = len(samples) // global_batch
    if steps_per_epoch == 0:
        raise UserError(f"the training split has {len(samples)} images, fewer than one global batch of "
                        f"{global_batch}; lower --batch_size")

    net = create_model(cfg.arch, num_classes=cfg.num_classes, drop_rate=cfg.drop_rate,
                       zero_init_last=cfg.zero_init_last)
    if cfg.pretrained:
        note = load_pretrained(net, cfg.pretrained, cfg.num_classes, pretrained_params)
        if dist.is_main:
            print(note, flush=True)
    step_cell = build_train_step(net, cfg, steps_per_epoch, dist.group_size)
    start_epoch, start_step = 0, 0
    if resume_path:
        # a fixed loss scale is a setting (this run's value wins); a dynamic one is state and carries on
        keep = FROM_CONFIG + (("scale_sense",) if cfg.loss_scale_type == "fixed" else ())
        start_epoch, start_step = restore_training_state(step_cell, net, resume_path, steps_per_epoch, keep,
                                                           resume_params)
        if dist.is_main:
            print(f"resumed from '{resume_path}': continuing at epoch {start_epoch + 1} step {start_step + 1}",
                  flush=True)
    elif cfg.resume == "auto" and dist.is_main:
        print(f"resume auto: no checkpoint in '{cfg.output_dir}' yet, starting a new run", flush=True)
    if dist.is_main:
        dump_config(cfg, cfg.output_dir)
        # predict.py and eval read the class names of a folder-trained model from beside its checkpoints
        write_json(os.path.join(cfg.output_dir, CLASS_NAMES_FILE), classes)
    return _run_loop(cfg, dist, net, step_cell, samples, steps_per_epoch, (start_epoch, start_step), resume_path)


def _run_loop(cfg, dist, net, step_cell, samples, steps_per_epoch: int, start: Tuple[int, int],
              resumed_from: Optional[str]) -> int:
    start_epoch, start_step = start
    source = CheckedImageSource(samples, strict=cfg.strict_data)
    saver = CheckpointSaver(cfg.output_dir, cfg.arch, cfg.keep_checkpoint_max, enabled=dist.is_main)
    saver.last_path = resumed_from  # the last good checkpoint until this run writes one
    logger = StepLogger(steps_per_epoch, cfg.batch_size * dist.group_size, cfg.log_interval, enabled=dist.is_main)
    metrics = MetricsWriter(cfg.output_dir, enabled=dist.is_main)
    evaluate = EvalCallback(net, cfg, dist, saver)
    stop = StopRequest()
    bad_in_a_row = 0
    for epoch in range(start_epoch + 1, cfg.epoch_size + 1):
        # A fresh pipeline per epoch, seeded by the epoch, so a resumed run sees the same order and augmentations.
        dataset, _ = create_dataset(cfg, "train", True, dist.rank, dist.group_size, seed=cfg.seed + epoch,
                                    source=source)
        bad_before, skipped_before = source.skipped, int(step_cell.skipped_steps.asnumpy())
        logger.begin_epoch()
        iterator = dataset.create_tuple_iterator(num_epochs=1)
        skip = start_step if epoch == start_epoch + 1 else 0
        for index, (images, labels) in enumerate(iterator):
            if index < skip:
                continue  # replay the data of the steps done before the checkpoint (keeps augmentation RNG exact)
            if index >= steps_per_epoch:
                break
            # Every step: a data pipeline's C++ launch replaces the process's SIGTERM handler (MindSpore 2.8), so
            # ours is put back once the batch is in hand (a few microseconds).
            stop.install()
            loss = float(step_cell(images, labels).asnumpy())
            source.raise_if_bad()
            step = index + 1
            if not math.isfinite(loss) or bool(step_cell.last_overflow.asnumpy()):
                bad_in_a_row += 1
                _check_nonfinite(cfg, loss, epoch, step, bad_in_a_row, saver)
            else:
                bad_in_a_row = 0
            logger.step(epoch, step, loss)
            if stop.signum:
                path = saver.save(step_cell, epoch, step, steps_per_epoch)
                if dist.is_main:
                    print(f"error: stopped by {signal.Signals(stop.signum).name} at epoch {epoch} step {step}; "
                          f"checkpoint '{path}' written; continue with --resume auto", file=sys.stderr, flush=True)
                return SIGNAL_EXIT + stop.signum
        del iterator, dataset
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


def _lr_of(step_cell, step: int) -> float:
    values = step_cell.lr_values
    return float(values[min(step, len(values) - 1)])


def _check_nonfinite(cfg, loss: float, epoch: int, step: int, bad_in_a_row: int, saver: CheckpointSaver) -> None:
    """Stop on a non-finite loss with a fixed loss scale, or after too many in a row with a dynamic one."""
    if cfg.loss_scale_type == "dynamic" and bad_in_a_row < cfg.nonfinite_patience:
        return
    last = f"the last good checkpoint is '{saver.last_path}'" if saver.last_path else "no checkpoint was written"
    why = (f"{bad_in_a_row} steps in a row" if cfg.loss_scale_type == "dynamic"
           else f"with the fixed loss scale {cfg.loss_scale:g}")
    raise UserError(f"training diverged: loss is {loss} (non-finite gradients) at epoch {epoch} step {step}, {why}; "
                    f"{last}; lower --lr, or use --loss_scale_type dynamic with AMP")


def _report_skips(dist, source: CheckedImageSource, bad_before: int, step_cell, skipped_before: int, epoch: int,
                  record: dict) -> None:
    bad = source.skipped - bad_before
    skipped = int(step_cell.skipped_steps.asnumpy()) - skipped_before
    record.update(bad_images=bad, skipped_steps=skipped, loss_scale=step_cell.loss_scale)
    if not dist.is_main:
        return
    if bad:
        print(f"warning: epoch {epoch}: {bad} unreadable image read(s) skipped (files named above); pass --strict_data to stop "
              f"on them instead", file=sys.stderr, flush=True)
    if skipped:
        print(f"warning: epoch {epoch}: {skipped} step(s) skipped for non-finite gradients; loss scale now "
              f"{step_cell.loss_scale:g}", flush=True)
