"""Zeek log tests: make ``zeek_testlib`` (this folder's hand-written conn.log) importable under importlib mode."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
