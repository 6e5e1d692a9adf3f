"""Command-line options every command that reads captures takes alike (``nta scan``, ``nta flows``,
``nta features``): the size guards. Defined once so their names, defaults and help cannot drift apart;
``analyzer.inputs.read_limits`` turns their values into a ``ReadLimits``."""

from __future__ import annotations

from typing import Annotated

import typer

MaxBytesOpt = Annotated[
    str,
    typer.Option(
        "--max-bytes", help="Most capture bytes read from one input, after gzip (e.g. 500M, 64G; 0: no limit)."
    ),
]
MaxInflateOpt = Annotated[
    float,
    typer.Option(
        "--max-inflate",
        min=0.0,
        help="Most times a gzip capture may inflate beyond its compressed size (0: no limit).",
    ),
]
