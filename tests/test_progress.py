"""train.py's progress line: position and ETAs of the epoch and the run at each log interval, ModelZoo style,
beside the unchanged grep-able lines."""
import re

from common.training import hooks


def test_progress_line_etas_from_the_mean_step_time(monkeypatch, capsys):
    clock = iter([100.0, 100.0 + 0.5 * 10, 100.0 + 0.5 * 20])  # begin_epoch, then 2 log points: 0.5 s per step
    monkeypatch.setattr(hooks.time, "perf_counter", lambda: next(clock))
    logger = hooks.StepLogger(steps_per_epoch=40, global_batch=8, log_interval=10, epoch_size=3)
    logger.begin_epoch()
    for step in range(1, 21):
        logger.step(2, step, 1.25)
    lines = capsys.readouterr().out.splitlines()
    # epoch 2 of 3, 20 of 40 steps done: 20 steps left in the epoch (10 s), 20 + 40 in the run (30 s)
    assert lines[-1] == ("epoch: [2/3], step: [20/40], per step time: 500.000 ms, epoch ETA: 0:00:10, "
                         "run ETA: 0:00:30")
    assert lines[-3] == "epoch: 2 step: 20, loss is 1.2500"
    assert re.fullmatch(r"epoch\[1\], iter\[59\], loss:1\.2500, mean_fps:16\.00imgs/sec", lines[-2])
    assert lines[2] == ("epoch: [2/3], step: [10/40], per step time: 500.000 ms, epoch ETA: 0:00:15, "
                        "run ETA: 0:00:35")


def test_clock_format():
    assert hooks._clock(0.4) == "0:00:00"
    assert hooks._clock(3599.6) == "1:00:00"
    assert hooks._clock(90061) == "25:01:01"


def test_without_epoch_size_the_log_is_unchanged(capsys):
    logger = hooks.StepLogger(steps_per_epoch=2, global_batch=4, log_interval=1)
    logger.begin_epoch()
    logger.step(1, 1, 0.5)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0] == "epoch: 1 step: 1, loss is 0.5000"
