"""Add ground-truth labels to `nta features sample_pcaps/demo-mixed.pcap` output, from how the capture was made.

sample_pcaps/make_samples.py generated demo-mixed.pcap: the scanner 192.168.56.66 runs a SYN scan of
10.0.0.20 and a ping sweep of 10.0.0.0/24 (Probe); spoofed outside sources send a SYN flood to
10.0.0.10:80 that never completes (flag S0, or S1 where the server answered: DoS, neptune); everything
else is benign. Usage: python docs/results/label_demo_mixed.py IN.parquet OUT.parquet
"""

from __future__ import annotations

import sys

import polars as pl

src, dst = sys.argv[1], sys.argv[2]
df = pl.read_parquet(src)
scanner = pl.col("orig_h") == "192.168.56.66"
flood = (pl.col("resp_h") == "10.0.0.10") & (pl.col("resp_p") == 80) & pl.col("flag").is_in(["S0", "S1"])
label = (
    pl.when(scanner & (pl.col("protocol_type") == "icmp"))
    .then(pl.lit("ipsweep"))
    .when(scanner)
    .then(pl.lit("portsweep"))
    .when(flood & ~pl.col("orig_h").str.starts_with("10.0.0."))
    .then(pl.lit("neptune"))
    .otherwise(pl.lit("normal"))
)
out = df.with_columns(label.alias("label"))
out.write_parquet(dst)
print(out.group_by("label").len().sort("label"))
