"""What msrun starts for the msrun launcher: the entry point, in this same process, with its exit status recorded.

    python scripts/msrun_worker.py RUN_DIR ENTRY.py [ENTRY ARGS...]

msrun reports a failed worker only by process id, and after killing the other workers it waits for the scheduler's
heartbeat timeout (about 30 s) before exiting. Each worker therefore writes RUN_DIR/rank_<rank>/exit_code as it ends,
which lets the launcher name the rank that failed and stop the job at once. The scheduler process (msrun runs the
same command with MS_ROLE=MS_SCHED) records nothing. The entry point runs as __main__ exactly as `python ENTRY.py`.
"""
from __future__ import annotations

import os
import runpy
import sys


def _exit_status(code: object) -> int:
    """The process exit status that SystemExit(code) produces."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _rank() -> str:
    """msrun exports RANK_ID when it assigns ranks itself; otherwise the communication layer knows it after init()."""
    if os.environ.get("RANK_ID"):
        return os.environ["RANK_ID"]
    try:
        from mindspore.communication import GlobalComm, get_rank

        return str(get_rank()) if GlobalComm.INITED else "unknown"
    except Exception:  # noqa: BLE001 - the status file must be written whatever state MindSpore is in
        return "unknown"


def _record(run_dir: str, status: int) -> None:
    if os.environ.get("MS_ROLE", "MS_WORKER") != "MS_WORKER":
        return
    folder = os.path.join(run_dir, f"rank_{_rank()}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "exit_code"), "w", encoding="utf-8") as handle:
        handle.write(f"{status}\n")


def main(argv: list) -> None:
    if len(argv) < 2:
        sys.exit("usage: python scripts/msrun_worker.py RUN_DIR ENTRY.py [ARGS...]")
    run_dir, entry = argv[0], os.path.abspath(argv[1])
    sys.argv = [entry, *argv[2:]]
    sys.path[0] = os.path.dirname(entry)  # as if `python ENTRY.py` had been run
    status = 1
    try:
        runpy.run_path(entry, run_name="__main__")
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
        raise
    finally:
        _record(run_dir, status)


if __name__ == "__main__":
    main(sys.argv[1:])
