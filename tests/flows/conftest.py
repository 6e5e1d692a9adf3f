"""Flow tests import their helpers (``flows_pkts``, ``flows_build``: names unique across test folders) from this folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
