"""Shared helpers of the launcher tests: run a model folder's scripts/run_*.sh with the stand-in, read its records."""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASH = shutil.which("bash") or "/bin/bash"  # absolute: some tests run the launchers with a reduced PATH
STANDIN = os.path.join(ROOT, "tests", "launcher_standin.py")
MODELS = ("resnext50_32x4d", "resnext152_64x4d", "resnest50")
# Variables a caller's shell may hold from an earlier job; each launcher must set or clear them itself.
LAUNCHER_VARIABLES = ("RANK_TABLE_FILE", "RANK_SIZE", "RANK_ID", "DEVICE_ID", "MS_WORKER_NUM", "MS_ROLE",
                      "SERVER_ID", "OMPI_COMM_WORLD_SIZE", "HCCL_CONNECT_TIMEOUT", "HCCL_EXEC_TIMEOUT")


def launcher_env(records: str, extra=None) -> dict:
    """The test's environment with the venv first on PATH (msrun starts `python` from PATH), the stand-in wired in."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(GLOG_v="3", PYTHONUNBUFFERED="1", ZOO_ENTRY_PY=STANDIN, STANDIN_OUT=records,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.update(extra or {})
    return env


def script_path(name: str, model: str = MODELS[0]) -> str:
    return os.path.join(ROOT, model, "scripts", name)


def launch(name, *args, records, cwd, env=None, model=MODELS[0], timeout=120):
    """Run scripts/NAME of `model` to completion; returns (CompletedProcess, seconds taken)."""
    start = time.monotonic()
    proc = subprocess.run([BASH, script_path(name, model), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=launcher_env(records, env))
    return proc, time.monotonic() - start


def read_records(folder: str) -> list:
    """What each stand-in process saw, sorted by RANK_ID."""
    records = []
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path, encoding="utf-8") as handle:
            records.append(json.load(handle))
    return sorted(records, key=lambda r: str(r["RANK_ID"]))


def process_gone(pid: int, within: float = 5.0) -> bool:
    """True once no process `pid` exists (a zombie still awaiting its reaper counts as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
                if handle.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_table(path, servers) -> str:
    """Write a rank table; `servers` is [(server_id, [(device_id, rank_id), ...]), ...]."""
    table = {"version": "1.0", "server_count": str(len(servers)), "status": "completed",
             "server_list": [{"server_id": sid, "host_nic_ip": "reserve",
                              "device": [{"device_id": str(d), "device_ip": f"192.168.{i}.{d + 1}",
                                          "rank_id": str(r)} for d, r in devices]}
                             for i, (sid, devices) in enumerate(servers)]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(table, handle)
    return str(path)


def form_line(proc) -> str:
    """The launcher's `form: ...` line: the first line of its output, naming the form its arguments were read as."""
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    assert first.startswith("form: "), proc.stdout + proc.stderr
    return first
