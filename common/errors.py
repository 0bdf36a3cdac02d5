"""User-facing errors: one clear line, no traceback, non-zero exit."""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])

# Exit code for a user mistake (bad argument, bad file); 2 is what argparse uses for bad arguments.
USER_ERROR_EXIT = 2


class UserError(Exception):
    """A mistake the user can fix: printed as one `error: ...` line, exit code 2, no traceback."""


def cli_main(func: F) -> F:
    """Wrap a command-line `main` so a UserError becomes one stderr line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)

    return wrapper  # type: ignore[return-value]
