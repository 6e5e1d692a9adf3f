"""Entry point of a spawned worker process: ``python -m features.capture.child IN_FD OUT_FD PARENT_PID [MODULE...]``.

The parent (``features.capture.spawn.Spawned``, for ``features.capture.readahead.in_child`` with ``spawn``) writes
one pickled callable to IN_FD, read once the worker has imported the MODULEs it was started with; it is called with
a ``multiprocessing.connection.Connection`` on OUT_FD and sends its items there. A fresh interpreter, not a fork
(polars' thread pool does not survive a fork), and not ``multiprocessing``'s spawn, which runs the parent's main
script again and so fails in scripts without an ``if __name__ == "__main__"`` guard.

Like a forked reader, the worker never outlives its parent: it asks the kernel to SIGKILL it when the parent
dies (``readahead.die_with_parent``); Ctrl-C reaches the whole process group, and the parent reports it.
"""

from __future__ import annotations

import importlib
import sys
from multiprocessing.connection import Connection

from features.capture.readahead import die_with_parent


def main(argv: list[str]) -> int:
    die_with_parent(int(argv[2]))  # argv[2]: the parent's pid
    inbox = Connection(int(argv[0]), writable=False)
    outbox = Connection(int(argv[1]), readable=False)
    try:
        for module in argv[3:]:  # started early (features.capture.spawn.prespawn_for): import while the parent does
            importlib.import_module(module)
        body = inbox.recv()
    except (EOFError, OSError):
        return 1
    except KeyboardInterrupt:  # Ctrl-C reaches the whole group: the parent reports it
        return 130
    finally:
        inbox.close()
    try:
        body(outbox)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
