"""What every stage of ``features`` and the ``model`` package share, and nothing else.

Errors that end a command (each with the exit code a CI job acts on), atomic file output and the
progress callback type. No stage logic lives here; a module that needs one of these imports it from here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["InputError", "ModelError", "NtaError", "ProgressFn", "atomic_path", "no_progress"]


# --- errors: the message is one line that names the file and the problem; ``analyzer`` prints it to stderr
# without a traceback. Bad *packets* are never errors: they are counted by name.


class NtaError(Exception):
    """Base of every error nta reports to the user as one line."""

    exit_code: int = 1


class InputError(NtaError):
    """Bad input or usage: not a capture, unreadable, nothing to scan (exit 2)."""

    exit_code = 2


class ModelError(NtaError):
    """Model missing, corrupt, tampered with, or incompatible with the features (exit 3)."""

    exit_code = 3


# --- atomic output: write to a temporary file beside the target, then rename, so no half-written file is seen.

# The process umask, read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it onto ``target``, else remove it.

    The rename is atomic on POSIX (same filesystem), so readers see the old file or the whole new one.
    The file gets the mode a plain ``open(target, "w")`` would give it: some writers (safetensors) create
    their files 0600, and a model folder a colleague cannot read is no use to them.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- progress: stages report work done without knowing about terminals.

# progress(done, total): units are the stage's own (bytes read, rows encoded, ...); total may be 0 if unknown.
ProgressFn = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """Default callback: report nothing."""
