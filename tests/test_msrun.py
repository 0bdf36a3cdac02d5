"""The msrun launcher on CPU: options and environment reach the workers, a real 2-worker data-parallel run equals a
1-process run with the same global batch, train.py itself under msrun (disjoint shards that make up the epoch, only
rank 0 writes, BatchNorm in training mode), and a failing worker stops the job within seconds, naming its rank.

msrun starts the `python` on PATH: launcher_env puts the test's interpreter first.
"""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from inference_helpers import write_image_folder
from launcher_helpers import ROOT, free_port, launch, read_records

DP_SCRIPT = os.path.join(ROOT, "tests", "dp_train_steps.py")
OBSERVED_TRAIN = os.path.join(ROOT, "tests", "observed_train.py")


def _processes_mentioning(text: str) -> list:
    """Pids of live processes whose command line contains `text` (zombies excluded)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
                state = handle.read().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(pid))
    return found


def test_msrun_launcher_passes_options_and_environment(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run, records, port = tmp_path / "run", str(tmp_path / "records"), free_port()
    proc, _ = launch("run_distribute_train_msrun.sh", "--device_target", "CPU", "--worker_num", "4", "--node_rank",
                     "1", "--master_addr", "127.0.0.1", "--master_port", port, "--cluster_time_out", "30",
                     "--output_dir", run, data, "2", "--", "--batch_size", "4", records=records, cwd=tmp_path,
                     env={"RANK_TABLE_FILE": str(tmp_path / "stale.json")}, model="resnest50")
    assert proc.returncode == 0, proc.stderr + (run / "msrun.log").read_text()
    seen = read_records(records)  # this node is node 1 of a 2-node, 4-worker job: it runs ranks 2 and 3
    assert [(r["RANK_ID"], r["MS_WORKER_NUM"], r["MS_SCHED_PORT"], r["RANK_TABLE_FILE"]) for r in seen] == [
        ("2", "4", str(port), None), ("3", "4", str(port), None)]
    for record in seen:
        assert record["argv"] == ["--data_dir", str(data), "--device_target", "CPU", "--output_dir", str(run),
                                  "--batch_size", "4"]
        assert "stand-in rank" in (run / "msrun_logs" / f"worker_{record['RANK_ID']}.log").read_text()
        assert (run / f"rank_{record['RANK_ID']}" / "exit_code").read_text().strip() == "0"


def _run_dp_steps(tmp_path, workers: int, *extra, timeout=180):
    """dp_train_steps.py alone (workers == 1) or through the msrun launcher; returns (CompletedProcess, folder)."""
    out = tmp_path / f"w{workers}"
    env = dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1")
    for var in ("RANK_TABLE_FILE", "RANK_SIZE", "RANK_ID", "MS_WORKER_NUM"):
        env.pop(var, None)
    if workers == 1:
        proc = subprocess.run([sys.executable, DP_SCRIPT, "--output_dir", str(out), *extra], capture_output=True,
                              text=True, env=env, timeout=timeout)
        return proc, out
    env.update(ZOO_ENTRY_PY=DP_SCRIPT, PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    proc = subprocess.run(["bash", os.path.join(ROOT, "resnext50_32x4d", "scripts", "run_distribute_train_msrun.sh"),
                           "--device_target", "CPU", "--master_port", str(free_port()), "--output_dir", str(out),
                           str(tmp_path), str(workers), "--", *extra],
                          capture_output=True, text=True, env=env, timeout=timeout)
    return proc, out


def test_two_worker_data_parallel_equals_one_process_with_the_same_global_batch(tmp_path):
    single, single_dir = _run_dp_steps(tmp_path, 1, "--steps", "2", "--global_batch", "4")
    assert single.returncode == 0, single.stderr
    dp, dp_dir = _run_dp_steps(tmp_path, 2, "--steps", "2", "--global_batch", "4")
    assert dp.returncode == 0, dp.stderr + dp.stdout
    initial = np.load(single_dir / "initial.npz")
    alone = np.load(single_dir / "weights_rank0.npz")
    rank0, rank1 = np.load(dp_dir / "weights_rank0.npz"), np.load(dp_dir / "weights_rank1.npz")
    assert sorted(rank0.files) == sorted(alone.files) == sorted(initial.files)
    moved = [k for k in alone.files if not np.array_equal(alone[k], initial[k])]
    assert len(moved) > 100  # every conv/dense weight and BN affine parameter took the steps
    largest_update = max(np.abs(alone[k] - initial[k]).max() for k in moved)
    for name in alone.files:
        assert np.array_equal(rank0[name], rank1[name]), name  # the ranks never diverge
        np.testing.assert_allclose(rank0[name], alone[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # float reassociation only: orders of magnitude below what the steps changed
    assert max(np.abs(rank0[k] - alone[k]).max() for k in alone.files) < 1e-4 * largest_update


def test_a_failing_worker_stops_the_job_within_seconds(tmp_path):
    proc, run = _run_dp_steps(tmp_path, 2, "--steps", "50", "--fail_rank", "1")
    finished = time.time()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error: rank 1 exited with status 1" in proc.stderr and "fails on purpose" in proc.stderr
    failed_at = os.path.getmtime(run / "rank_1" / "exit_code")
    assert finished - failed_at < 10, f"{finished - failed_at:.1f} s from the failure to the launcher's exit"
    assert not (run / "weights_rank0.npz").exists()  # rank 0 was stopped, not left to finish its 50 steps
    assert not _processes_mentioning(str(run))  # nothing of the job is left running (scheduler included)


def test_train_py_under_msrun_shards_the_epoch_and_only_rank_0_writes(tmp_path):
    """resnext50_32x4d/train.py (through tests/observed_train.py, which records reads and writes) with 2 workers of
    the msrun launcher, on its default recipe with only the sizes overridden (tests/test_recipes.py's third path: AMP
    O2 asked, float32 on CPU, graph mode): 16 images, batch 2 per worker, one epoch of 4 steps."""
    samples = write_image_folder(str(tmp_path / "data" / "train"), [8, 8], size=(32, 32))
    run, observed = tmp_path / "run", tmp_path / "observed"
    observed.mkdir()
    env = dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1", ZOO_ENTRY_PY=OBSERVED_TRAIN, OBSERVE_DIR=str(observed),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for var in ("RANK_TABLE_FILE", "RANK_SIZE", "RANK_ID", "MS_WORKER_NUM"):
        env.pop(var, None)
    proc = subprocess.run(["bash", os.path.join(ROOT, "resnext50_32x4d", "scripts", "run_distribute_train_msrun.sh"),
                           "--device_target", "CPU", "--master_port", str(free_port()), "--output_dir", str(run),
                           str(tmp_path / "data"), "2", "--", "--num_classes", "2", "--image_size", "32",
                           "--batch_size", "2", "--epoch_size", "1"],
                          capture_output=True, text=True, env=env, timeout=900)
    logs = {r: (run / "msrun_logs" / f"worker_{r}.log").read_text() for r in (0, 1)}
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs[0][-3000:] + logs[1][-3000:]
    # the recipe as shipped: it asks for AMP O2, which CPU runs in float32, and must not diverge at step 1
    assert "training runs float32" in logs[0], logs[0][-3000:]
    assert not any(word in log for log in logs.values() for word in ("diverged", "skipped for non-finite"))
    seen = {r: json.loads((observed / f"rank{r}.json").read_text()) for r in (0, 1)}

    # each rank reads its own half of the images, and the halves make up the epoch
    reads = {r: seen[r]["read"] for r in (0, 1)}
    assert len(reads[0]) == len(set(reads[0])) == 8 and len(reads[1]) == len(set(reads[1])) == 8, reads
    assert not set(reads[0]) & set(reads[1])
    assert set(reads[0]) | set(reads[1]) == {path for path, _ in samples}

    # only rank 0 writes the run's files; every rank may write rank_<r>/exit_code (the launcher's status file) and
    # the writability probe .write_test.<pid> it deletes at once (common/fileio.py check_writable_folder)
    written = {r: {p for p in seen[r]["wrote"] if not re.fullmatch(r"rank_\d+/exit_code|\.write_test\.\d+", p)}
               for r in (0, 1)}
    assert not written[1], written[1]
    assert {"resnext50_32x4d-1_4.ckpt", "config.yaml", "class_names.json", "metrics.jsonl"} <= written[0]
    assert "epoch: 1 step: 4, loss is" in logs[0] and "loss is" not in logs[1]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1

    # BatchNorm ran in training mode: every running statistic left its initial value (mean 0, variance 1)
    import mindspore as ms

    params = {k: v.asnumpy() for k, v in ms.load_checkpoint(str(run / "resnext50_32x4d-1_4.ckpt")).items()}
    means = [k for k in params if k.endswith("moving_mean")]
    assert len(means) == 53  # stem 1, 3 per block, 4 shortcuts
    for name in means:
        assert not np.all(params[name] == 0.0), name
        assert not np.all(params[name.replace("moving_mean", "moving_variance")] == 1.0), name
