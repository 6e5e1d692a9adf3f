"""The ``nta`` command line. Commands live in ``analyzer/cmd_*.py``; this module only assembles them.

Exit codes: 0 ok; 1 verdicts matched ``--fail-on``; 2 bad input or usage; 3 model problem; 70 internal
error (a bug); 130 Ctrl-C; 141 stdout closed by its reader; 143 SIGTERM. Errors are one line on stderr; ``--traceback`` shows the Python traceback.
"""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from analyzer import __version__, cmd_carve, cmd_features, cmd_flows, cmd_model, cmd_scan, cmd_study
from analyzer.errors import SHOW_TRACEBACK, exit_codes_help, leave_now_if_threads_run, terminate_on_sigterm

app = typer.Typer(
    name="nta",
    help=(
        "Offline network-forensics triage: captures -> flows -> NSL-KDD features -> MSMRNet verdicts.\n\n"
        "Start with: nta scan CAPTURE.pcap (nta scan -h for its options).\n\n" + exit_codes_help()
    ),
    no_args_is_help=True,
    add_completion=False,
    # -h as well as --help, for every command (click contexts inherit it).
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain click help: flags are shown as flags (rich help printed ``--force <bool>`` as if it took a value).
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"nta {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    traceback: Annotated[bool, typer.Option("--traceback", help="Show the Python traceback on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    SHOW_TRACEBACK["on"] = traceback


for _module in (cmd_flows, cmd_features, cmd_model, cmd_scan, cmd_carve, cmd_study):
    _module.register(app)
for _command in app.registered_commands:  # every command's help ends with the exit codes (scan's HELP has its own)
    if _command.epilog is None and "Exit codes:" not in (_command.help or ""):
        _command.epilog = exit_codes_help()


def main() -> None:
    """Console-script entry point."""
    terminate_on_sigterm()
    try:
        app(prog_name="nta")
    except SystemExit as e:
        leave_now_if_threads_run(e.code)
        # The command is done and its outputs closed. The interpreter's teardown would have its cyclic collector
        # walk every object the imports and the command left (polars', pyarrow's and duckdb's modules): 0.09-0.14 s
        # after a 1M-packet scan. Frozen, they are freed by reference counts alone (0.03-0.04 s).
        gc.freeze()
        raise
