"""ModelArts jobs (`--enable_modelarts true`): copy OBS data in and the run folder out with moxing."""
from __future__ import annotations

import os

from .errors import UserError

LOCAL_DATA = "/cache/data"
LOCAL_CKPT = "/cache/checkpoint"


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
    mox.file.copy_parallel(src_url=cfg.data_url, dst_url=LOCAL_DATA)
    cfg.data_dir = LOCAL_DATA
    if cfg.checkpoint_url:
        local = os.path.join(LOCAL_CKPT, os.path.basename(cfg.checkpoint_url.rstrip("/")))
        mox.file.copy(cfg.checkpoint_url, local)
        if cfg.resume and cfg.resume != "auto":
            cfg.resume = local
        else:
            cfg.pretrained = local


def sync_out(cfg) -> None:
    """Copy the run folder (checkpoints, logs, metrics) to train_url."""
    if not cfg.enable_modelarts or not cfg.train_url:
        return
    _moxing().file.copy_parallel(src_url=cfg.output_dir, dst_url=cfg.train_url)
