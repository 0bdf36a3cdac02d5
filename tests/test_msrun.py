"""The msrun launcher on CPU: options and environment reach the workers, a real 2-worker data-parallel run equals a
1-process run with the same global batch, and a failing worker stops the job within seconds, naming its rank.

msrun starts the `python` on PATH: launcher_env puts the test's interpreter first.
"""
import os
import subprocess
import sys
import time

import numpy as np
from launcher_helpers import ROOT, free_port, launch, read_records

DP_SCRIPT = os.path.join(ROOT, "tests", "dp_train_steps.py")


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
