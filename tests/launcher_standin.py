"""Stand-in for train.py/eval.py/export.py in the launcher tests (the launchers run it through ZOO_ENTRY_PY).

Records what a rank saw (launcher and HCCL variables, arguments, CPU affinity, pid, working folder) as
STANDIN_OUT/<RANK_ID>.<pid>.json, prints a line, then: exits 1 after STANDIN_FAIL_AFTER seconds (default 0.3) when
RANK_ID equals STANDIN_FAIL_RANK, otherwise sleeps STANDIN_SLEEP seconds (default 0) and exits 0. msrun's scheduler
role (MS_ROLE=MS_SCHED) exits 0 at once. Only the standard library, so it starts fast.
"""
import json
import os
import sys
import time

VARIABLES = ("DEVICE_ID", "RANK_ID", "RANK_SIZE", "RANK_TABLE_FILE", "MS_ROLE", "MS_WORKER_NUM",
             "MS_SCHED_HOST", "MS_SCHED_PORT", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
             "HCCL_CONNECT_TIMEOUT", "HCCL_EXEC_TIMEOUT")


def main() -> int:
    if os.environ.get("MS_ROLE") == "MS_SCHED":
        return 0
    rank = os.environ.get("RANK_ID", "none")
    record = {name: os.environ.get(name) for name in VARIABLES}
    record.update(argv=sys.argv[1:], affinity=sorted(os.sched_getaffinity(0)), pid=os.getpid(), cwd=os.getcwd())
    out = os.environ["STANDIN_OUT"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{rank}.{os.getpid()}.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    print(f"stand-in rank {rank} started", flush=True)
    if os.environ.get("STANDIN_FAIL_RANK") == rank:
        time.sleep(float(os.environ.get("STANDIN_FAIL_AFTER", "0.3")))
        print(f"stand-in rank {rank}: failing on purpose", file=sys.stderr, flush=True)
        return 1
    time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
