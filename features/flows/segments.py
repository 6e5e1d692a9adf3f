"""Segmented numpy scans: cumulative sums and maxima that restart at every segment start.

Rows are sorted so that each segment (a key, a flow, a flow direction) is one contiguous run; a segment
is described by a boolean ``start`` array (True on its first row). Everything is O(n) numpy, no Python
loop per row.
"""

from __future__ import annotations

import itertools

import numpy as np


def bool_cumsum(b: np.ndarray) -> np.ndarray:
    """Inclusive running count of True in a bool array, as int64 (same values as ``np.cumsum(b)``).

    numpy's bool -> int64 cumsum takes a slow casting path (~2.7x slower); uint8 -> int32 is exact
    below 2**31 rows.
    """
    if b.size < (1 << 31):
        return np.cumsum(b.view(np.uint8), dtype=np.int32).astype(np.int64)
    return np.cumsum(b, dtype=np.int64)


def seg_ids(start: np.ndarray) -> np.ndarray:
    """Segment number (0-based) of every row. ``start[0]`` must be True when n > 0."""
    return bool_cumsum(start) - 1 if start.dtype == np.bool_ else np.cumsum(start, dtype=np.int64) - 1


def seg_cumsum(x: np.ndarray, start: np.ndarray, inclusive: bool = True) -> np.ndarray:
    """Cumulative sum of non-negative ``x`` (bool or counts) restarting at each segment start (int64).

    Non-negative values make the running total non-decreasing, so each row's segment offset is the
    running maximum of the totals at segment starts: no segment ids, no gather.
    """
    cs = bool_cumsum(x) if x.dtype == np.bool_ else np.cumsum(x, dtype=np.int64)
    excl = cs - x
    base = np.maximum.accumulate(np.where(start, excl, 0)) if x.size else excl
    return (cs if inclusive else excl) - base


def seg_cummax(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Inclusive cumulative maximum of int64 ``x`` restarting at each segment start."""
    if x.size == 0:
        return x.astype(np.int64)
    x = x.astype(np.int64, copy=False)
    lo = int(x.min())
    span = int(x.max()) - lo + 1
    sid = seg_ids(start)
    if span * (int(sid[-1]) + 1) < (1 << 62):
        shift = sid * span
        return np.maximum.accumulate(x - lo + shift) - shift + lo
    # Values too spread to offset safely: fall back to one maximum.accumulate per segment.
    out = np.empty_like(x)
    bounds = np.append(np.flatnonzero(start), x.size)
    for s, e in itertools.pairwise(bounds):
        out[s:e] = np.maximum.accumulate(x[s:e])
    return out


def prev_in_seg(x: np.ndarray, start: np.ndarray, fill: int | float | bool) -> np.ndarray:
    """The previous row's value within the segment; ``fill`` on each segment's first row."""
    out = np.empty_like(x)
    if x.size:
        out[1:] = x[:-1]
        out[start] = fill
    return out


def last_of_seg(start: np.ndarray) -> np.ndarray:
    """Boolean: True on the last row of each segment."""
    end = np.zeros(start.shape, bool)
    if start.size:
        end[:-1] = start[1:]
        end[-1] = True
    return end
