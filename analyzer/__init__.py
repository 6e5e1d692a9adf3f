"""nta: the command line, pipeline wiring, verdicts and reports. The only package that talks to the user."""

import os
from importlib.metadata import PackageNotFoundError, version

# numpy's OpenBLAS starts a thread per core that keeps spinning (sched_yield) after each matrix product, waiting
# for the next; nta's products are small, and on a machine whose cores are busy (nta's own reader and flow
# builder, or other jobs) the spinning took CPU from them: a 1M-packet scan beside a training job used 13.6
# user CPU-s with it and 10.3 without (quiet machine: 5.36 s end to end against 5.52, mean of 3). Set before
# numpy is first imported (this package is imported first); the flow-building child inherits it. A user's
# own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# torch's OpenMP workers (GNU libgomp) spin for up to 300,000 iterations after each parallel region before
# they sleep. Between inference batches the scan process does other work (features, Parquet rows), and the
# spinning worker holds a core the flow builder and decoder need: a 1M-packet scan took 6.74 s end to end
# (median of 5, 10.3 CPU-s) with the default and 6.40 s (9.4 CPU-s) with 10,000, while inference alone on
# 2 threads kept its speed (174,000 flows/s against 179,000; OMP_WAIT_POLICY=PASSIVE, never spinning, cut it
# to 105,000). libgomp reads it when torch loads it, which is after this.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

try:
    __version__ = version("nta")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"
