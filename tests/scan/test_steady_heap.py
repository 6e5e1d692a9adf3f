"""``analyzer.pipeline.steady_heap``: after it, a chunk-sized buffer gets its own mapping (given back when freed)
even once glibc has raised its mmap threshold, which it does whenever such a buffer is freed; and an inference
batch's buffer stays in the heap when freed (glibc's trim threshold is raised with it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

HEAD = """
import ctypes, sys
import numpy as np
from analyzer.pipeline import M_TRIM_THRESHOLD, steady_heap

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
"""

MAPPED = """
big = np.ones(24 << 17)  # 24 MiB, mapped; freeing it raises glibc's threshold to 24 MiB (its ceiling: 32)
del big
if sys.argv[1] == "steady":
    steady_heap()
before = libc.mallinfo2().hblkhd
chunk = np.ones(8 << 17)  # 8 MiB: a chunk's array
print(libc.mallinfo2().hblkhd - before >= 8 << 20)
"""

KEPT = """
steady_heap()
if sys.argv[1] == "trim-128k":  # steady_heap's mmap threshold alone, glibc's trim threshold left at 128 KiB
    libc.mallopt(M_TRIM_THRESHOLD, 128 << 10)
batch = np.ones(3 << 17)  # 3 MiB: an inference batch's tensor, from the top of the heap
held = libc.mallinfo2().arena
del batch
print(libc.mallinfo2().arena >= held)  # still held for the next batch: no page faults to get it back
"""


def _probe(body: str, how: str) -> str:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallinfo2  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("no glibc with mallinfo2 here")
    code = HEAD + body
    return subprocess.run(
        [sys.executable, "-c", code, how], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


@pytest.mark.parametrize(("how", "mapped"), [("steady", "True"), ("default", "False")])
def test_chunk_buffers_are_mapped_after_steady_heap(how: str, mapped: str) -> None:
    assert _probe(MAPPED, how) == mapped


@pytest.mark.parametrize(("how", "kept"), [("steady", "True"), ("trim-128k", "False")])
def test_batch_buffers_stay_in_the_heap_after_steady_heap(how: str, kept: str) -> None:
    assert _probe(KEPT, how) == kept
