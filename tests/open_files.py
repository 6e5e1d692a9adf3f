"""What this process holds open: a scan run in-process (as the tests and a Ray driver run it) must close every file
it opened, on success and on failure alike."""

from __future__ import annotations

import os
from pathlib import Path


def open_files_under(folder: Path) -> list[str]:
    """The targets of this process's open descriptors that lie under ``folder`` (deleted files too)."""
    targets = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # closed since it was listed (the listing's own descriptor)
            continue
    return [t for t in targets if t.startswith(f"{folder}/")]
