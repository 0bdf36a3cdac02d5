"""A SIGTERM that reaches one rank of a 2-worker msrun job (issue 14): the ranks agree at the next chunk end, both
stop there without hanging in an all-reduce, and rank 0 writes its checkpoint before any rank exits."""
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT
from image_data import write_images
from launcher_helpers import free_port
from test_train_e2e import ARCH


def _worker_pid(run_dir: str, rank: int) -> int:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = dict(v.split("=", 1) for v in fh.read().decode(errors="replace").split("\0") if "=" in v)
        except OSError:
            continue
        if ("msrun_worker.py" in cmd and run_dir in cmd and env.get("MS_ROLE", "MS_WORKER") == "MS_WORKER"
                and rank == int(env.get("RANK_ID", env.get("MS_NODE_ID", "-1")))):
            return int(pid)
    return 0


def test_sigterm_to_one_rank_stops_both_at_the_same_chunk_end_with_rank_0_checkpoint(tmp_path):
    data = tmp_path / "data"
    write_images(str(data / "train"), 8, seed=0)  # 16 images, global batch 4: 4 steps per epoch
    out = tmp_path / "run"
    env = dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for var in ("RANK_TABLE_FILE", "RANK_SIZE", "RANK_ID", "MS_WORKER_NUM", "ZOO_ENTRY_PY"):
        env.pop(var, None)
    proc = subprocess.Popen(["bash", os.path.join(ROOT, ARCH, "scripts", "run_distribute_train_msrun.sh"),
                             "--device_target", "CPU", "--master_port", str(free_port()), "--output_dir", str(out),
                             str(data), "2", "--", "--image_size", "32", "--batch_size", "2", "--num_classes", "2",
                             "--epoch_size", "3", "--log_interval", "2", "--amp_level", "O0"],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log0 = out / "msrun_logs" / "worker_0.log"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if log0.exists() and "epoch: 1 step: 2," in log0.read_text():
            break
        time.sleep(0.5)
    pid = _worker_pid(str(out), 1)
    assert pid, "rank 1 not found"
    os.kill(pid, signal.SIGTERM)  # rank 1 only
    output, _ = proc.communicate(timeout=300)  # a rank stuck in an all-reduce would hang here
    log = log0.read_text()
    assert proc.returncode != 0, output
    assert "stopped by SIGTERM" in log, log[-3000:] + output[-2000:]
    ckpts = sorted(n for n in os.listdir(out) if n.endswith(".ckpt"))
    stop_line = [line for line in log.splitlines() if "stopped by SIGTERM" in line][0]
    epoch, step = stop_line.split(" at epoch ")[1].split(";")[0].split(" step ")
    assert f"{ARCH}-{epoch}_{step}.ckpt" in ckpts, (stop_line, ckpts)
    assert int(step) % 2 == 0  # a chunk end (log_interval 2)
