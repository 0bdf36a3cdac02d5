"""ModelArts jobs (`--enable_modelarts true`): copy OBS data in and the run folder out with moxing.

Every process of a job calls `sync_in`; on each server the first to take the lock copies data_url (and
checkpoint_url) into /cache and leaves a marker, the others wait on the lock and find the marker, so a server copies
its data once instead of once per device. Only rank 0 copies the run folder out (`sync_out`).
"""
from __future__ import annotations

import fcntl
import os

from .errors import UserError

LOCAL_DATA = "/cache/data"
LOCAL_CKPT = "/cache/checkpoint"
LOCK_FILE = "/cache/.zoo_sync_in.lock"
COPIED_MARKER = ".zoo_copied"


class _server_lock:
    """An exclusive lock on LOCK_FILE, shared by the processes of one server (flock; released on exit too)."""

    def __enter__(self):
        os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
        os.makedirs(LOCAL_DATA, exist_ok=True)
        self.fh = open(LOCK_FILE, "a", encoding="utf-8")  # noqa: SIM115 - held until __exit__
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _rank() -> int:
    try:
        from mindspore.communication import get_rank

        return int(get_rank())
    except Exception:  # noqa: BLE001 - collectives not initialised: a single process or before init()
        return int(os.environ.get("RANK_ID", "0") or "0")


def _moxing():
    try:
        import moxing  # noqa: F401 - only ModelArts images ship it
    except ImportError:
        raise UserError("--enable_modelarts needs the 'moxing' package, which ModelArts training images ship; "
                        "run on ModelArts or drop --enable_modelarts and pass local --data_dir/--output_dir") from None
    return moxing


def sync_in(cfg) -> None:
    """Copy data_url to a local folder (cfg.data_dir points there) and checkpoint_url to one (as pretrained or
    resume, whichever the run asked for, else pretrained)."""
    if not cfg.enable_modelarts:
        return
    if not cfg.data_url:
        raise UserError("--enable_modelarts needs --data_url (the OBS folder with train/ and val/)")
    mox = _moxing()
    local = os.path.join(LOCAL_CKPT, os.path.basename(cfg.checkpoint_url.rstrip("/"))) if cfg.checkpoint_url else ""
    with _server_lock():
        marker = os.path.join(LOCAL_DATA, COPIED_MARKER)
        if not os.path.exists(marker):  # the first process of this server copies, the others found it done
            mox.file.copy_parallel(src_url=cfg.data_url, dst_url=LOCAL_DATA)
            if local:
                mox.file.copy(cfg.checkpoint_url, local)
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write(cfg.data_url + "\n")
    cfg.data_dir = LOCAL_DATA
    if local:
        if cfg.resume and cfg.resume != "auto":
            cfg.resume = local
        else:
            cfg.pretrained = local


def sync_out(cfg, rank: int = -1) -> None:
    """Rank 0 copies the run folder (checkpoints, logs, metrics) to train_url; other ranks do nothing.

    `rank` defaults to the communication rank when collectives are initialised, else RANK_ID (0 when unset).
    """
    if not cfg.enable_modelarts or not cfg.train_url:
        return
    if (rank if rank >= 0 else _rank()) != 0:
        return
    _moxing().file.copy_parallel(src_url=cfg.output_dir, dst_url=cfg.train_url)
