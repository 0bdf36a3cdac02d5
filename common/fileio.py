"""Files the zoo writes: never half-written under their final name, and one-line errors when they cannot be.

`atomic_write` is the one temporary-file-then-rename mechanism (checkpoints, JSON results, the resolved config,
exported graphs, the CPU operator library); `first_line` is the one way an exception from MindSpore or the OS is
shortened to a single readable line.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Callable, Iterator

from .errors import UserError


def first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message (MindSpore adds pages of C++ context), or its type name when empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a hidden temporary path beside `path`; when the block ends cleanly it is fsynced and renamed over
    `path`, else removed (an existing `path` is left untouched).

    `suffix` ends the temporary name: MindSpore appends `.ckpt`/`.mindir` to names without it.
    """
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.partial{suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (a crash right after it must not bring the old file back)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable[[str], Any], what: str, fix: str, suffix: str = "",
                 errors: tuple = (OSError,)) -> str:
    """Call `write(tmp_path)`, then move the result to `path` atomically; returns `path`.

    A failure in `errors` becomes one UserError: "could not write {what} '{path}' (reason); {fix}".
    """
    try:
        with atomic_path(path, suffix) as tmp:
            write(tmp)
    except errors as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise UserError(f"could not write {what} '{path}' ({reason}); {fix}") from None
    return path


def write_json(path: str, data: Any) -> str:
    """Write JSON atomically (results, class names, export metadata)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)

    return atomic_write(path, dump, "file", "choose a writable output folder")


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
