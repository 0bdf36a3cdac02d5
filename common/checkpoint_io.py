"""Atomic checkpoint writes: a killed job or a full disk never leaves a half-written .ckpt under its final name."""
from __future__ import annotations

import os
from typing import Any

import mindspore as ms

from .errors import UserError


def check_writable_folder(folder: str, option: str) -> None:
    """Create `folder` when missing and prove a file can be written in it; else a UserError naming `option`.

    Entry points call this before building a network, so an unwritable output costs seconds, not a whole run.
    """
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write_test.{os.getpid()}")
        with open(probe, "w", encoding="utf-8") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise UserError(f"{option} '{folder}' is not writable ({exc.strerror}); choose another folder") from None


def save_checkpoint_atomic(save_obj: Any, path: str, **kwargs: Any) -> str:
    """`ms.save_checkpoint` to a hidden temporary file in the same folder, fsync it, then rename over `path`.

    The temporary name ends in .ckpt because MindSpore appends that suffix to any other name. On failure (disk full,
    permissions) the temporary file is removed, an existing `path` is left untouched, and a UserError says why.
    """
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.partial.ckpt")
    try:
        ms.save_checkpoint(save_obj, tmp, **kwargs)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except (OSError, RuntimeError, ValueError) as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not write checkpoint '{path}' ({first}); free disk space or choose a writable "
                        f"--output_dir") from None
    return path
