"""Atomic output: write to a temporary file beside the target, then rename, so no half-written file is ever seen."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

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
