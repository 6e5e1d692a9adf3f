"""``--allow FILE``: known-good hosts, networks and services, whose flows never make an incident or a --fail-on match.

The file has one entry per line; ``#`` starts a comment, blank lines are ignored::

    10.0.0.5              # a host: every flow from or to it
    10.20.0.0/16          # a network, IPv4 or IPv6
    53/udp                # a service: flows to responder port 53 over UDP, on any host
    10.0.0.53 53/udp      # a service on a host or network: flows to it there
    192.168.1.0/24 443/tcp

Allowed flows keep their verdicts in every output (``verdicts.csv``'s ``allowed`` column says which they are);
they are left out of incidents, ``--fail-on`` matches, the top suspicious flows and the top talkers, and the
report says how many there were. A line that is none of these ends the scan with one line naming the file
and the line (exit code 2).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from features.capture.filter import parse_net
from features.common import InputError

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
_SERVICE = re.compile(r"^(\d{1,5})/(tcp|udp)$", re.IGNORECASE)


@dataclass(frozen=True)
class AllowEntry:
    """One line of an allow file: a network, a service (port/proto), or a service on a network."""

    net: Net | None
    port: int | None
    proto: str | None
    text: str


def read_allow(path: Path) -> list[AllowEntry]:
    """The entries of an allow file; ``InputError`` naming the file and line for anything else."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (--allow)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the allow list ({e})") from None
    out = []
    for i, raw in enumerate(lines, 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        net = port = proto = None
        rest = words
        if not _SERVICE.match(rest[0]):
            try:
                net = parse_net(rest[0])
            except InputError:
                raise InputError(
                    f"{path}:{i}: {rest[0]!r} is not an address, a CIDR network or a service like 53/udp"
                ) from None
            rest = rest[1:]
        if rest:
            m = _SERVICE.match(rest[0])
            if not m or len(rest) > 1 or int(m.group(1)) > 65535:
                raise InputError(f"{path}:{i}: {' '.join(rest)!r} is not a service like 53/udp or 443/tcp")
            port, proto = int(m.group(1)), m.group(2).lower()
        out.append(AllowEntry(net, port, proto, " ".join(words)))
    return out


def allowed(flows: pl.DataFrame, entries: list[AllowEntry]) -> pl.Series:
    """(n,) bool: flows an entry allows. Addresses are tested once each (flows share few hosts)."""
    if not entries or flows.height == 0:
        return pl.Series("allowed", [False] * flows.height, dtype=pl.Boolean)
    hosts = pl.concat([flows["orig_h"], flows["resp_h"]]).unique().to_list()
    addr = {h: ipaddress.ip_address(h) for h in hosts}
    hit = pl.lit(False)
    for e in entries:
        if e.net is not None:
            inside = [h for h, a in addr.items() if a.version == e.net.version and a in e.net]
        if e.port is None and e.net is not None:
            cond = pl.col("orig_h").is_in(inside) | pl.col("resp_h").is_in(inside)
        else:
            cond = (pl.col("proto") == e.proto) & (pl.col("resp_p") == e.port)
            if e.net is not None:
                cond &= pl.col("resp_h").is_in(inside)
        hit = hit | cond
    return flows.select(hit.fill_null(False).alias("allowed")).to_series()
