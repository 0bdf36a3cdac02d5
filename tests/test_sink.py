"""The sink path of train.py (common.training.sink, issue 14). MindSpore 2.8 sinks data on Ascend and GPU only;
on CPU Model.train runs a sink request unsunk with the same callbacks, so ZOO_SINK_LOOP_ON_CPU=1 checks here what
the chunked loop adds: chunk ends that tile the epoch, stops at a chunk end and an exact resume from there."""
import os
import signal

import numpy as np
import pytest
from conftest import run_cli
from test_train_e2e import ARCH, RESUME_ARGS, run_until, straight_run, train_args  # noqa: F401 - a fixture

SINK = {"ZOO_SINK_LOOP_ON_CPU": "1"}


@pytest.mark.parametrize("steps,interval,want", [(4, 2, 2), (4, 100, 4), (5004, 100, 36), (7, 3, 1), (12, 5, 4)])
def test_chunks_are_the_largest_divisor_of_the_epoch_up_to_log_interval(steps, interval, want):
    from common.training.sink import chunk_size

    assert chunk_size(steps, interval) == want



def net_weights(path):
    """The network and optimizer moments of a train.py checkpoint (counters and loss-scale state left out)."""
    import mindspore as ms

    from common.weights.checkpoint import TRAIN_STATE_PREFIXES

    return {k: v.asnumpy() for k, v in ms.load_checkpoint(path).items()
            if not k.startswith(TRAIN_STATE_PREFIXES) or k.startswith("moments.")}

def test_sink_applies_on_ascend_and_gpu_and_not_on_cpu(monkeypatch):
    from easydict import EasyDict

    from common.training.sink import sink_applies

    monkeypatch.delenv("ZOO_SINK_LOOP_ON_CPU", raising=False)
    for target, want in (("Ascend", True), ("GPU", True), ("CPU", False)):
        assert sink_applies(EasyDict(dataset_sink_mode=True, device_target=target)) == want
        assert not sink_applies(EasyDict(dataset_sink_mode=False, device_target=target))


def test_recipes_sink_by_default():
    from common.config import load_config

    for model in ("resnext50_32x4d", "resnext152_64x4d", "resnest50"):
        assert load_config(os.path.join(model, "default_config.yaml")).dataset_sink_mode is True


def test_sink_loop_stops_at_a_chunk_end_and_resumes_exactly(straight_run, tmp_path, monkeypatch):  # noqa: F811
    """SIGTERM in the sink loop, then --resume auto: the run ends on the weights of the uninterrupted unsunk run of
    test_train_e2e (same data, settings and RESUME_ARGS), so the sunk steps and the resume are both exact."""
    for key, value in SINK.items():
        monkeypatch.setenv(key, value)
    sink = [*RESUME_ARGS, "--dataset_sink_mode", "true", "--log_interval", "2"]
    want = net_weights(os.path.join(straight_run["out"], f"{ARCH}-3_4.ckpt"))

    broken = tmp_path / "broken"
    code, out = run_until(train_args(straight_run["data"], broken, *sink), "epoch: 1 step: 4,", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, out
    assert "2 steps per sink chunk" in out
    assert "epoch: 1 step: 2, loss is" in out and "epoch: 1 step: 1, loss" not in out  # logged at chunk ends
    # stops fall on chunk ends only: the end of epoch 1 when the signal beat its check, else step 2 of epoch 2
    ckpts = sorted(n for n in os.listdir(broken) if n.endswith(".ckpt"))
    assert ckpts in ([f"{ARCH}-1_4.ckpt"], [f"{ARCH}-1_4.ckpt", f"{ARCH}-2_2.ckpt"]), ckpts
    result = run_cli(train_args(straight_run["data"], broken, *sink, "--resume", "auto"))
    assert result.returncode == 0, result.stderr
    assert "2 steps per sink chunk" in result.stdout and "epoch: 3 step: 4, loss is" in result.stdout
    assert "step: 1, loss" not in result.stdout and "step: 3, loss" not in result.stdout
    got = net_weights(str(broken / f"{ARCH}-3_4.ckpt"))
    assert sorted(got) == sorted(want)
    worst = max(float(np.abs(got[k] - want[k]).max()) for k in want)
    assert worst <= 1e-5, f"resumed sink run differs from the uninterrupted one by {worst}"
