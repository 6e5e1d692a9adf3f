"""The skeleton: the CLI starts, reports its version, and maps errors to one line and an exit code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.errors import ExitCode, Terminated, exit_code_for, guarded, one_line
from features.common import InputError, ModelError


def test_version_via_python_m() -> None:
    out = subprocess.run([sys.executable, "-m", "analyzer", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("nta ")


def test_unknown_command_is_usage_error() -> None:
    res = CliRunner().invoke(app, ["no-such-command"])
    assert res.exit_code == ExitCode.BAD_INPUT


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InputError("x.pcap: not a capture"), 2),
        (ModelError("model/: weights sha256 mismatch"), 3),
        (KeyboardInterrupt(), 130),
        (Terminated(), 143),
        (BrokenPipeError(32, "Broken pipe"), 141),
        (FileNotFoundError(2, "No such file or directory", "a.pcap"), 2),
        (RuntimeError("boom"), 70),
    ],
)
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


def test_one_line_messages_have_no_newlines() -> None:
    msg = one_line(InputError("bad.pcap: not a pcap\nor pcapng file"))
    assert msg == "nta: error: bad.pcap: not a pcap or pcapng file"
    assert "a.pcap" in one_line(FileNotFoundError(2, "No such file or directory", "a.pcap"))


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        # An OS error that reaches the command line reads as nta's own: the file first, then the problem.
        (
            FileNotFoundError(2, "No such file or directory", "/cases/x"),
            "nta: error: /cases/x: No such file or directory",
        ),
        (OSError(18, "Invalid cross-device link", "/a", None, "/b"), "nta: error: /a -> /b: Invalid cross-device link"),
        (OSError("no errno"), "nta: error: no errno"),
        (FileNotFoundError(2, "No such file or directory"), "nta: error: [Errno 2] No such file or directory"),
    ],
)
def test_os_errors_name_the_file_then_the_problem(exc: OSError, line: str) -> None:
    assert one_line(exc) == line


def test_guarded_prints_one_line_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    @guarded
    def boom() -> None:
        raise InputError("x.pcap: not a capture (bad magic 0x00000000)")

    with pytest.raises(typer.Exit) as e:
        boom()
    assert e.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.pcap" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, "1 10000"), ({"OPENBLAS_NUM_THREADS": "4", "GOMP_SPINCOUNT": "300000"}, "4 300000")],
)
def test_thread_runtime_defaults_set_before_numpy_and_torch(given: dict[str, str], expected: str) -> None:
    """Importing ``analyzer`` keeps numpy's OpenBLAS on one thread and shortens libgomp's spin (both read when
    the library loads, so numpy and torch must not be loaded yet); a user's own settings win."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GOMP_SPINCOUNT")}
    code = (
        "import os, sys, analyzer.cli; "
        "assert 'numpy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules); "
        "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['GOMP_SPINCOUNT'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env | given, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()
