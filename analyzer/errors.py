"""Exit codes and the one place that turns errors into a one-line message and an exit code."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from enum import IntEnum
from typing import ParamSpec, TypeVar

import typer

from features.common import InputError, ModelError, NtaError, escape_surrogates

__all__ = [
    "ExitCode",
    "InputError",
    "ModelError",
    "NtaError",
    "Terminated",
    "exit_code_for",
    "guarded",
    "one_line",
    "terminate_on_sigterm",
]

P = ParamSpec("P")
R = TypeVar("R")

# Set by the root callback (``nta --traceback ...``).
SHOW_TRACEBACK = {"on": False}


class ExitCode(IntEnum):
    """What a CI job can act on (documented in the README and ``nta --help``)."""

    OK = 0
    MATCHED = 1  # verdicts matched --fail-on
    BAD_INPUT = 2  # not a capture, unreadable, nothing to scan, bad usage
    MODEL = 3  # model missing, corrupt or incompatible
    INTERNAL = 70  # a bug in nta (EX_SOFTWARE): never confused with "attacks found"
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    STDOUT_CLOSED = 141  # stdout closed by its reader (``| head``): 128 + SIGPIPE, as a shell reports it
    TERMINATED = 143  # SIGTERM (kill, a CI job's timeout): handled as Ctrl-C is, temporary files removed


# One line per exit code for every command's help (``nta scan`` adds its own detail in its help text).
EXIT_MEANINGS: dict[int, str] = {
    ExitCode.OK: "ok",
    ExitCode.MATCHED: "verdicts matched --fail-on (nta scan)",
    ExitCode.BAD_INPUT: "bad input or usage (one line on stderr names the file and problem)",
    ExitCode.MODEL: "model problem (missing, corrupt, incompatible)",
    ExitCode.INTERNAL: "internal error: a bug in nta (--traceback shows it)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.STDOUT_CLOSED: "stdout closed by its reader (| head); files written are complete",
    ExitCode.TERMINATED: "terminated (SIGTERM)",
}


def exit_codes_help() -> str:
    """The exit codes as a help paragraph click prints as it is (``\\b``), one code a line."""
    return "\b\nExit codes:\n" + "\n".join(f"  {int(c):<4} {EXIT_MEANINGS[c]}" for c in ExitCode)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by ``terminate_on_sigterm``'s handler.

    A ``KeyboardInterrupt`` so that every clean-up written for Ctrl-C (temporary files, the reader process,
    worker threads) runs for it too; only its exit code and message differ.
    """


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def terminate_on_sigterm() -> None:
    """From now on SIGTERM interrupts the command like Ctrl-C (exit 143 instead of dying half-way)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def leave_now_if_threads_run(code: object) -> None:
    """After an interruption (exit 130/143), end the process at once when a worker thread still runs.

    The inference thread (a daemon) may be inside torch when Ctrl-C or SIGTERM ends the command; at interpreter
    finalization such a thread is stopped with ``pthread_exit``, whose unwinding through torch's C++ frames
    aborts the process ("terminate called without an active exception", exit -6 instead of 130). Every clean-up
    (temporary files, the reader process) has run by then, in the command's own ``finally`` blocks, so only the
    interpreter's teardown is skipped: standard streams are flushed first.
    """
    if code not in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return
    main = threading.main_thread()
    if any(t is not main and t.is_alive() for t in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(int(code))  # type: ignore[call-overload]


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ended a command."""
    if isinstance(exc, Terminated):
        return ExitCode.TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, BrokenPipeError):  # the only pipe nta writes to is stdout (outputs are regular files)
        return ExitCode.STDOUT_CLOSED
    if isinstance(exc, NtaError):
        return exc.exit_code
    if isinstance(exc, OSError):
        return ExitCode.BAD_INPUT
    return ExitCode.INTERNAL


def one_line(exc: BaseException) -> str:
    """``nta: error: <message>`` on one line, whatever the message holds."""
    if isinstance(exc, Terminated):
        return "nta: terminated (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "nta: interrupted"
    if isinstance(exc, BrokenPipeError):
        return "nta: stdout closed by its reader (broken pipe); files written are complete"
    if not isinstance(exc, NtaError | OSError):
        return f"nta: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} (rerun with --traceback)"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        # "[Errno 2] No such file or directory: '/x'" -> "/x: No such file or directory", as nta's own errors read
        names = str(exc.filename) if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        text = f"{names}: {exc.strerror}"
        return f"nta: error: {' '.join(text.split())}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return f"nta: error: {text}"


def print_error(exc: BaseException) -> None:
    with contextlib.suppress(OSError):  # stderr closed too: the exit code is all there is
        print(escape_surrogates(one_line(exc)), file=sys.stderr)  # undecodable name bytes as \\xNN


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not hit the closed pipe again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # AttributeError/ValueError: no real fd (tests)
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: errors become one line on stderr and their exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except (Exception, KeyboardInterrupt) as e:
            if SHOW_TRACEBACK["on"]:
                raise
            if isinstance(e, BrokenPipeError):
                _silence_stdout()
            print_error(e)
            raise typer.Exit(exit_code_for(e)) from None

    return wrapper
