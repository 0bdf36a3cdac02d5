"""train.py end to end on CPU with a tiny generated data set: bit-identical resume after SIGTERM, SIGINT and SIGKILL
(--resume PATH and auto), flat memory over epochs, and the training-side failures of the reliability catalogue
(clear one-line errors, skipped bad images, non-finite loss).

Every run is resnext50_32x4d at 32 px, batch 4, 4 steps per epoch: the grouped-conv backward is slow on CPU
(docs/DESIGN.md §5), so the runs are a few steps long.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli, shared_run
from image_data import write_images

TRAIN = os.path.join("resnext50_32x4d", "train.py")
ARCH = "resnext50_32x4d"
BASE = ["--device_target", "CPU", "--mode", "graph", "--num_classes", "2", "--image_size", "32", "--batch_size", "4",
        "--epoch_size", "3", "--lr", "0.01", "--warmup_epochs", "1", "--log_interval", "1", "--amp_level", "O0",
        "--loss_scale_type", "dynamic", "--loss_scale", "1024", "--keep_checkpoint_max", "2", "--seed", "7"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_images(str(root / "train"), 8, seed=0)
    write_images(str(root / "val"), 2, seed=1)
    return str(root)


def train_args(data_dir, out, *extra):
    return [TRAIN, "--data_dir", data_dir, "--output_dir", str(out), *BASE, *extra]


def checkpoint_entries(path):
    """Every entry of a train.py checkpoint (network, moments, global_step, scale_sense, counters) as numpy."""
    import mindspore as ms

    return {k: v.asnumpy() for k, v in ms.load_checkpoint(path).items()}


def run_until(args, marker, sig):
    """Start train.py, send `sig` once `marker` appears on stdout, return (exit code, stdout)."""
    env = dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(marker):
            proc.send_signal(sig)
            break
    lines.extend(proc.stdout)
    return proc.wait(timeout=300), "".join(lines)


def assert_user_error(result, *words):
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in errors[0], errors[0]


# The run of the resume test: a dynamic loss scale from 2**118 overflows in the first steps and halves each time, so
# the scale a checkpoint holds differs from the initial one before the first interruption (state, not a setting).
RESUME_ARGS = ["--loss_scale", str(2.0 ** 118)]
# Largest rise of the resident set from epoch 2 to the last one of the uninterrupted run (epoch 1 holds the graph
# compile and first allocations). Measured: 0.3 to 1.4 MB over epochs 2-4; a leak of 64 MB an epoch fails it. At these
# sizes an epoch's whole pipeline kept alive costs under 1 MB, below what this can see.
RSS_TOLERANCE_MB = 16.0


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """The uninterrupted run of the resume test (3 epochs of 4 steps, RESUME_ARGS), made once per session: the sink
    and overflow tests start from it too. Returns its data folder, run folder and stdout."""

    def build(folder):
        write_images(str(folder / "data" / "train"), 8, seed=0)
        write_images(str(folder / "data" / "val"), 2, seed=1)
        result = run_cli(train_args(str(folder / "data"), folder / "run", *RESUME_ARGS))
        assert result.returncode == 0, result.stderr[-3000:]
        return {"data": str(folder / "data"), "out": str(folder / "run"), "stdout": result.stdout}

    return shared_run(tmp_path_factory, "train-e2e-straight", build)


def test_interrupted_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one(straight_run, tmp_path):
    """SIGTERM in epoch 1, --resume PATH then SIGINT in epoch 2, --resume auto then SIGKILL in epoch 3, --resume auto
    to the end: the last checkpoint equals the uninterrupted run's entry by entry, bit for bit. The runs after the
    first load the graph the uninterrupted run compiled (ZOO_COMPILE_CACHE), so this also checks that a kept graph
    computes what a compiled one does."""
    data_dir, straight, stdout = straight_run["data"], Path(straight_run["out"]), straight_run["stdout"]
    assert "epoch: 3 step: 4, loss is" in stdout and "mean_fps:" in stdout
    assert "epoch time:" in stdout
    assert "compile cache: this run's graph is kept in" in stdout  # the session's ZOO_COMPILE_CACHE (conftest)
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert {"loss", "lr", "img_per_sec", "seconds", "skipped_steps", "rss_mb"} <= set(records[0])
    rise = records[-1]["rss_mb"] - records[1]["rss_mb"]
    assert rise <= RSS_TOLERANCE_MB, f"resident memory grew {rise:.1f} MB over the epochs: {records}"
    names = sorted(os.listdir(straight))
    assert [n for n in names if n.endswith(".ckpt")] == [f"{ARCH}-2_4.ckpt", f"{ARCH}-3_4.ckpt"]  # keep max 2
    assert "config.yaml" in names
    assert json.loads((straight / "class_names.json").read_text()) == ["class0", "class1"]  # read by predict.py
    want = checkpoint_entries(str(straight / f"{ARCH}-3_4.ckpt"))
    assert {"global_step", "scale_sense", "skipped_steps"} <= set(want)

    broken = tmp_path / "broken"
    # SIGTERM in epoch 1: the step finishes, a checkpoint is written, the exit code says so.
    code, out = run_until(train_args(data_dir, broken, *RESUME_ARGS), "epoch: 1 step: 2,", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, out
    assert "stopped by SIGTERM" in out
    (first,) = [n for n in os.listdir(broken) if n.endswith(".ckpt")]
    assert first in (f"{ARCH}-1_2.ckpt", f"{ARCH}-1_3.ckpt"), os.listdir(broken)
    first_state = checkpoint_entries(str(broken / first))
    assert float(first_state["scale_sense"]) < 2.0 ** 118  # the dynamic scale moved before the interruption
    assert int(first_state["skipped_steps"]) >= 1
    # --resume PATH, then SIGINT (Ctrl-C) in epoch 2. MindSpore 2.8's data engine turns a SIGINT into a SIGTERM to
    # the process (its C++ SIGINTHandler), so the stop may be reported as either; it must be the graceful one.
    code, out = run_until(train_args(data_dir, broken, *RESUME_ARGS, "--resume", str(broken / first)),
                          "epoch: 2 step: 2,", signal.SIGINT)
    assert f"resumed from '{broken / first}'" in out
    assert "compile cache: using the graph" in out  # the resumed runs load the uninterrupted run's graph
    named = [sig for sig in (signal.SIGINT, signal.SIGTERM) if f"stopped by {sig.name} at epoch 2" in out]
    assert len(named) == 1 and code == 128 + named[0], out
    stopped_at = [n for n in os.listdir(broken) if n.startswith(f"{ARCH}-2_")]
    assert stopped_at and stopped_at[0] in (f"{ARCH}-2_2.ckpt", f"{ARCH}-2_3.ckpt"), os.listdir(broken)
    # --resume auto from the mid-epoch checkpoint, then SIGKILL during epoch 3: a killed process writes nothing.
    code, out = run_until(train_args(data_dir, broken, *RESUME_ARGS, "--resume", "auto"), "epoch: 3 step: 2,",
                          signal.SIGKILL)
    assert code == -signal.SIGKILL, out
    assert f"resumed from '{broken / stopped_at[0]}'" in out
    # the newest complete checkpoint is the end of epoch 2; resume from it to the end
    result = run_cli(train_args(data_dir, broken, *RESUME_ARGS, "--resume", "auto"))
    assert result.returncode == 0, result.stderr
    assert f"{ARCH}-2_4.ckpt': continuing at epoch 3 step 1" in result.stdout
    got = checkpoint_entries(str(broken / f"{ARCH}-3_4.ckpt"))
    assert sorted(got) == sorted(want)
    differing = [k for k in want if got[k].dtype != want[k].dtype or not np.array_equal(got[k], want[k])]
    assert not differing, f"{len(differing)} entries differ from the uninterrupted run, e.g. {differing[:5]}"


def test_bad_images_are_skipped_with_a_warning_or_refused_with_strict_data(data_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    good = (data / "train" / "class0" / "00.jpg").read_bytes()
    (data / "train" / "class0" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (data / "train" / "class1" / "notes.jpg").write_text("not a picture")
    # dynamic loss scale from 2**126: the first steps overflow, are skipped and counted, then training goes on
    result = run_cli(train_args(str(data), tmp_path / "out", "--epoch_size", "1", "--loss_scale", str(2.0 ** 126)))
    assert result.returncode == 0, result.stderr
    assert "cut.jpg': truncated JPEG" in result.stderr and "notes.jpg': not an image" in result.stderr
    assert "epoch 1: " in result.stderr and "unreadable image read(s) skipped" in result.stderr
    record = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["bad_images"] >= 1 and record["skipped_steps"] >= 1
    assert f"epoch 1: {record['skipped_steps']} step(s) skipped for non-finite gradients" in result.stdout
    assert_user_error(run_cli(train_args(str(data), tmp_path / "strict", "--strict_data", "true")),
                      "cut.jpg", "--strict_data")


def test_fixed_loss_scale_overflow_stops_and_keeps_the_checkpoint(straight_run, tmp_path):
    import shutil

    # the last checkpoint of the shared uninterrupted run (dynamic scale), copied into a run folder of this test
    out = tmp_path / "out"
    out.mkdir()
    ckpt = out / f"{ARCH}-3_4.ckpt"
    shutil.copyfile(os.path.join(straight_run["out"], ckpt.name), ckpt)
    before = ckpt.read_bytes()
    # a fixed loss scale of 1e38 overflows every gradient: skipped steps are tolerated up to nonfinite_patience in a
    # row (ModelZoo semantics), then the run stops instead of training on
    result = run_cli(train_args(straight_run["data"], out, "--epoch_size", "4", "--resume", "auto",
                                "--loss_scale_type", "fixed", "--loss_scale", "1e38", "--nonfinite_patience", "3"))
    assert_user_error(result, "diverged", "fixed loss scale", str(ckpt))
    assert ckpt.read_bytes() == before
    assert sorted(n for n in os.listdir(out) if n.endswith(".ckpt")) == [ckpt.name]


def test_user_mistakes_give_one_clear_line(data_dir, tmp_path):
    assert_user_error(run_cli(train_args(data_dir, tmp_path / "a", "--resume", str(tmp_path / "none.ckpt"))),
                      "--resume", "does not exist")
    assert_user_error(run_cli(train_args(data_dir, tmp_path / "b", "--num_classes", "5")),
                      "2 class folders", "--num_classes 2")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(run_cli(train_args(data_dir, blocker / "sub")), "not writable")
    image = open(os.path.join(data_dir, "val", "class0", "00.jpg"), "rb").read()
    for split, name in (("train", "class0"), ("val", "other")):
        os.makedirs(tmp_path / "odd" / split / name)
        (tmp_path / "odd" / split / name / "a.jpg").write_bytes(image)
    assert_user_error(run_cli(train_args(str(tmp_path / "odd"), tmp_path / "c", "--num_classes", "1")),
                      "different class folders")
    help_run = run_cli([TRAIN, "--help"])
    assert help_run.returncode == 0 and "--label_smooth_factor" in help_run.stdout
