"""Data sink for train.py on Ascend and GPU (`--dataset_sink_mode true`, on in every recipe): the epoch runs
through `mindspore.Model.train` with `sink_size` = one chunk, so the device pulls batches from its data queue and
the host hears from it once per chunk.

A chunk is the largest divisor of steps_per_epoch not above log_interval, so chunks tile every epoch: logs, the
non-finite check, stop requests (agreed across ranks), checkpoints and therefore exact resume all fall on chunk ends,
and evaluation on epoch ends as before. A resume from a checkpoint between chunk ends (written by a stepped run) steps
that one epoch from Python and sinks again from the next. The loss logged per chunk is the chunk's last step's
(the device returns no other), so the epoch's mean loss is the mean over chunk ends.

MindSpore 2.8 does not sink on CPU (Model.train runs such a request unsunk there, with the same callbacks), so CPU
runs step from Python; ZOO_SINK_LOOP_ON_CPU=1 runs this module's loop on CPU anyway, which is how the tests check its
chunking, stops and resume. The sinking itself (the data queue, `sink_size` steps per device launch) was checked by
reading MindSpore's documentation and source only: no Ascend or GPU was reachable.
"""
from __future__ import annotations

import os

import mindspore as ms
from mindspore.train.callback import Callback

SINK_ON_CPU = "ZOO_SINK_LOOP_ON_CPU"  # runs the sink loop on CPU too (tests)


def chunk_size(steps_per_epoch: int, log_interval: int) -> int:
    """The largest divisor of `steps_per_epoch` that is at most `log_interval` (at least 1)."""
    limit = max(1, min(log_interval, steps_per_epoch))
    return max(d for d in range(1, limit + 1) if steps_per_epoch % d == 0)


def sink_applies(cfg) -> bool:
    """dataset_sink_mode on a backend that sinks (Ascend, GPU), or on CPU with ZOO_SINK_LOOP_ON_CPU=1."""
    if not cfg.dataset_sink_mode:
        return False
    return cfg.device_target != "CPU" or os.environ.get(SINK_ON_CPU, "0") == "1"


def sink_note(cfg, applies: bool, chunk: int) -> str:
    if applies:
        return (f"dataset_sink_mode: {chunk} steps per sink chunk (the largest divisor of the epoch's steps not above "
                f"log_interval {cfg.log_interval}); logs, checkpoints and stops fall on chunk ends")
    return ("note: dataset_sink_mode applies on Ascend and GPU only (MindSpore does not sink on CPU): this CPU run "
            "steps from Python")


class _ChunkEnds(Callback):
    """Hands every chunk end to `run.chunk_end`; asks Model.train to stop when the ranks agreed on a stop."""

    def __init__(self, run, epoch: int, skip: int, chunk: int) -> None:
        super().__init__()
        self.run, self.epoch, self.skip, self.chunk = run, epoch, skip, chunk
        self.signum, self.step = 0, skip

    def on_train_step_begin(self, run_context) -> None:
        self.run.stop.install()  # the data pipeline's launch replaces the SIGTERM handler (see loop._epoch_stepped)

    def on_train_step_end(self, run_context) -> None:
        done = run_context.original_args().cur_step_num  # sunk: advances by sink_size per call
        if done % self.chunk:
            return  # unsunk (CPU): Model.train calls this every step; only chunk ends count
        self.step = self.skip + done
        loss = run_context.original_args().net_outputs
        self.signum = self.run.chunk_end(self.epoch, self.step, [float(loss.asnumpy())])
        if self.signum:
            run_context.request_stop()


def run_epoch(run, dataset, epoch: int, skip: int, chunk: int) -> int:
    """Steps skip+1..steps_per_epoch of `epoch` in sink chunks of `chunk` steps (`skip` a multiple of it); returns
    the exit status of an agreed stop, else 0."""
    todo = run.steps_per_epoch - skip
    if skip:
        dataset = dataset.skip(skip)  # the skipped batches still pass the augmentations: the RNG stays exact
    dataset = dataset.take(todo)
    trainer = getattr(run, "trainer", None)
    if trainer is None:
        trainer = run.trainer = ms.Model(run.step_cell)  # the step is a whole train cell: no loss or optimizer
    ends = _ChunkEnds(run, epoch, skip, chunk)
    # sunk, a Model.train "epoch" is one chunk of sink_size steps; unsunk (CPU) it is a pass over the whole dataset
    epochs = todo // chunk if ms.get_context("device_target") != "CPU" else 1
    trainer.train(epochs, dataset, callbacks=[ends], dataset_sink_mode=True, sink_size=chunk)
    run.source.raise_if_bad()
    if ends.signum:
        return run.stopped(ends.signum, epoch, ends.step)
    return 0
