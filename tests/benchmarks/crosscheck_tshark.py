#!/usr/bin/env python3
"""Cross-check nta's TCP/UDP flows against ``tshark -q -z conv,tcp -z conv,udp`` on every corpus capture.

Usage::

    python tests/benchmarks/crosscheck_tshark.py [--samples] [--out /work/notes/tshark-crosscheck.md] [CAPTURE...]

Without CAPTURE arguments it walks ``../shared/data/pcaps`` (and ``sample_pcaps/`` with ``--samples``).
Needs ``tshark`` on PATH (Debian package ``tshark``); prints a Markdown table and optionally saves it.

What is compared, per capture and per transport (TCP, UDP):

* conversations: rows of tshark's ``conv,tcp`` / ``conv,udp`` tables vs nta flows with that ``proto``;
* packets: tshark's conversation frame totals vs nta's ``orig_pkts + resp_pkts``;
* IP bytes: over the frames tshark dissects as TCP (UDP), the innermost IP layer's length (IPv4 total
  length, IPv6 payload length + 40) vs nta's ``orig_ip_bytes + resp_ip_bytes``. tshark's conversation
  "Bytes" are frame bytes (link headers included, humanised as "kB" in 4.0), so they are not used.

The "why" column is computed from the data, not written by hand: for each difference it checks the
causes that are known to make the two tools differ (nta ends a TCP flow after FIN/RST and starts a new
one on a later SYN; nta splits flows on idle timeouts; nta keys flows by VLAN; tshark decodes tunnels and
reassembles IP fragments) and names those
that explain the difference exactly. A difference with no explanation is printed as "UNEXPLAINED".
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "data" / "pcaps"
SAMPLES = REPO / "sample_pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")

_ROW = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(.*)$")
_FRAMES_BYTES = re.compile(r"(\d+)\s+([\d.]+)\s*(bytes|kB|MB|GB)")


@dataclass
class TsharkSide:
    """What tshark reports for one capture."""

    convs: dict[str, int] = field(default_factory=dict)  # "tcp"/"udp" -> conversation rows
    pkts: dict[str, int] = field(default_factory=dict)  # frames in those conversations
    stream_pkts: dict[str, int] = field(default_factory=dict)  # frames with a stream id (ICMP quotes excluded)
    ip_bytes: dict[str, int] = field(default_factory=dict)  # innermost IP length over those frames
    tunnelled: dict[str, int] = field(default_factory=dict)  # TCP/UDP frames with more than one IP layer
    fragments: int = 0  # frames that are IP fragments
    # proto -> endpoint pair -> stream id -> TCP flags of the stream's first frame
    streams: dict[str, dict[Pair, dict[str, int]]] = field(default_factory=dict)
    error: str = ""


Pair = tuple[str, str]


def _pair(a: str, ap: str, b: str, bp: str) -> Pair:
    x, y = f"{a}:{ap}", f"{b}:{bp}"
    return (x, y) if x <= y else (y, x)


def _last(v: str) -> str:
    return v.split(",")[-1] if v else ""


def run_tshark(path: Path) -> TsharkSide:
    """Run tshark twice on one capture: the conversation tables, and per-frame fields (streams, bytes)."""
    side = TsharkSide()
    conv = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp", "-z", "conv,udp"],
        capture_output=True,
        text=True,
        check=False,
    )
    if conv.returncode != 0:
        side.error = conv.stderr.strip().splitlines()[-1] if conv.stderr.strip() else f"rc {conv.returncode}"
    section = ""
    for line in conv.stdout.splitlines():
        if line.startswith("TCP Conversations"):
            section = "tcp"
        elif line.startswith("UDP Conversations"):
            section = "udp"
        m = _ROW.match(line)
        if m and section:
            side.convs[section] = side.convs.get(section, 0) + 1
            nums = _FRAMES_BYTES.findall(m.group(3))
            side.pkts[section] = side.pkts.get(section, 0) + int(nums[2][0])  # the "Total" column
    names = [
        "tcp.stream", "udp.stream", "ip.len", "ipv6.plen", "icmp.type", "icmpv6.type", "ip.flags.mf",
        "ip.frag_offset", "ipv6.fraghdr.ident", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
        "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags",
    ]  # fmt: skip
    args = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    fields = subprocess.run(args + [x for n in names for x in ("-e", n)], capture_output=True, text=True, check=False)
    if fields.returncode != 0 and not fields.stdout:
        raise RuntimeError(f"tshark -T fields failed on {path}: {fields.stderr.strip()}")
    for proto in ("tcp", "udp"):
        side.convs.setdefault(proto, 0)
        side.pkts.setdefault(proto, 0)
        side.stream_pkts[proto] = side.ip_bytes[proto] = side.tunnelled[proto] = 0
        side.streams[proto] = {}
    for line in fields.stdout.splitlines():
        f = dict(zip(names, (line.split("\t") + [""] * len(names))[: len(names)], strict=True))
        mf, off = f["ip.flags.mf"].split(","), f["ip.frag_offset"].split(",")
        if "1" in mf or any(x not in ("", "0") for x in off) or f["ipv6.fraghdr.ident"]:
            side.fragments += 1
        if not (f["tcp.stream"] or f["udp.stream"]) or _icmp_error(f["icmp.type"], f["icmpv6.type"]):
            # No TCP/UDP, or the TCP/UDP header quoted inside an ICMP error: tshark's conversation tables
            # skip it (nta keeps the frame as an ICMP record).
            continue
        layers = _ip_layers(f["ip.len"], f["ipv6.plen"])
        v6 = bool(f["ipv6.src"])
        src, dst = _last(f["ipv6.src"] if v6 else f["ip.src"]), _last(f["ipv6.dst"] if v6 else f["ip.dst"])
        for proto in ("tcp", "udp"):
            if not f[f"{proto}.stream"]:
                continue
            side.stream_pkts[proto] += 1
            side.tunnelled[proto] += len(layers) > 1
            side.ip_bytes[proto] += layers[-1] if layers else 0
            stream = _last(f[f"{proto}.stream"])
            key = _pair(src, _last(f[f"{proto}.srcport"]), dst, _last(f[f"{proto}.dstport"]))
            flags = int(_last(f["tcp.flags"]) or "0", 16) if proto == "tcp" else 0
            side.streams[proto].setdefault(key, {}).setdefault(stream, flags)
    return side


_ICMP_ERRORS = {"3", "4", "5", "11", "12"}
_ICMP6_ERRORS = {"1", "2", "3", "4"}


def _icmp_error(icmp_t: str, icmp6_t: str) -> bool:
    return bool(set(icmp_t.split(",")) & _ICMP_ERRORS or set(icmp6_t.split(",")) & _ICMP6_ERRORS)


def _ip_layers(ip_len: str, ip6_plen: str) -> list[int]:
    """IP lengths of every IP layer in a frame; tshark lists each field's occurrences comma-separated.

    The order between IPv4 and IPv6 layers is lost in the field output; the innermost length is taken as
    the last IPv6 length when there is an IPv6 layer (Teredo: IPv6 in UDP in IPv4), else the last IPv4 one.
    """
    v4 = [int(x) for x in ip_len.split(",") if x]
    v6 = [int(x) + 40 for x in ip6_plen.split(",") if x]
    return v4 + v6


@dataclass
class NtaSide:
    flows: dict[str, int] = field(default_factory=dict)
    pkts: dict[str, int] = field(default_factory=dict)
    ip_bytes: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, dict[Pair, int]] = field(default_factory=dict)  # flows per endpoint pair (VLAN ignored)
    vlan_extra: dict[str, int] = field(default_factory=dict)  # flows that differ from another only by VLAN
    splits: dict[str, Counter[str]] = field(default_factory=dict)  # why one pair became several flows
    bad: dict[str, int] = field(default_factory=dict)
    error: str = ""


def _ended(history: str) -> bool:
    """A reset (R, I, or Q: SYN with FIN/RST) or FINs from both sides ended the flow."""
    up = history.upper()
    return "R" in up or "I" in up or "Q" in up or ("F" in history and "f" in history)


def run_nta(path: Path, tcp_timeout: float = 300.0, udp_timeout: float = 60.0) -> NtaSide:
    from features.extract import extract_flows

    side = NtaSide()
    try:
        ext = extract_flows([path])
    except Exception as e:  # the table must show every file; the corpus test asserts there are no errors
        side.error = f"{type(e).__name__}: {e}"
        return side
    side.bad = dict(ext.bad_packets)
    rows = ext.flows.to_pylist()
    for proto, timeout in (("tcp", tcp_timeout), ("udp", udp_timeout)):
        mine = [r for r in rows if r["proto"] == proto]
        side.flows[proto] = len(mine)
        side.pkts[proto] = sum(r["orig_pkts"] + r["resp_pkts"] for r in mine)
        side.ip_bytes[proto] = sum(r["orig_ip_bytes"] + r["resp_ip_bytes"] for r in mine)
        by_pair: dict[Pair, dict[object, list[dict]]] = {}
        for r in mine:
            key = _pair(r["orig_h"], str(r["orig_p"]), r["resp_h"], str(r["resp_p"]))
            by_pair.setdefault(key, {}).setdefault(r["vlan"], []).append(r)
        side.pairs[proto] = {k: sum(map(len, v.values())) for k, v in by_pair.items()}
        side.vlan_extra[proto] = sum(len(v) - 1 for v in by_pair.values())
        why: Counter[str] = Counter()
        for per_vlan in by_pair.values():
            for vr in per_vlan.values():
                vr.sort(key=lambda r: r["ts"])
                for prev, nxt in itertools.pairwise(vr):
                    gap = (nxt["ts"] - prev["ts_end"]).total_seconds()
                    first = nxt["history"].lstrip("^")[:1]
                    if gap > timeout:
                        why[f"idle gap > {timeout:.0f} s (timeout)"] += 1
                    elif proto == "tcp" and _ended(prev["history"]) and first in ("S", "Q"):
                        why[
                            "SYN after a close/reset (Zeek: new connection; tshark: same conversation if same ISN)"
                        ] += 1
                    elif proto == "tcp" and _ended(prev["history"]):
                        why["packet > 5 s after a close/reset (Zeek's tcp_close_delay/tcp_reset_delay)"] += 1
                    else:
                        why["other split"] += 1
        side.splits[proto] = why
    return side


def explain(proto: str, t: TsharkSide, n: NtaSide) -> str:
    """Account for the differences of one transport, cause by cause; what is left is UNEXPLAINED."""
    dc = n.flows.get(proto, 0) - t.convs.get(proto, 0)
    dp = n.pkts.get(proto, 0) - t.pkts.get(proto, 0)
    db = n.ip_bytes.get(proto, 0) - t.ip_bytes.get(proto, 0)
    if dc == 0 and dp == 0 and db == 0:
        return ""
    notes: list[str] = []
    accounted = 0
    if n.vlan_extra.get(proto):
        notes.append(f"+{n.vlan_extra[proto]} VLAN in nta's key")
        accounted += n.vlan_extra[proto]
    for why, k in sorted(n.splits.get(proto, Counter()).items()):
        notes.append(f"+{k} nta: {why}")
        accounted += k
    t_split: Counter[str] = Counter()
    for streams in t.streams.get(proto, {}).values():
        for flags in list(streams.values())[1:]:
            if proto == "udp":
                t_split["tshark splits one 5-tuple into several UDP conversations (dissector-made, e.g. SNMP)"] += 1
            elif flags & 0x02 and not flags & 0x10:
                t_split[
                    "tshark: SYN with a new ISN on an open connection (port reuse; Zeek's IsReuse also splits)"
                ] += 1
            else:
                t_split[f"tshark: new conversation at TCP flags {flags:#05x}"] += 1
    for why, k in sorted(t_split.items()):
        notes.append(f"-{k} {why}")
        accounted -= k
    t_pairs, n_pairs = t.streams.get(proto, {}), n.pairs.get(proto, {})
    only_t = {k: len(v) for k, v in t_pairs.items() if k not in n_pairs}
    only_n = {k: v for k, v in n_pairs.items() if k not in t_pairs}
    causes = []
    if t.tunnelled.get(proto):
        causes.append(f"{t.tunnelled[proto]} tunnelled frames (tshark decodes the inner packets, nta keeps the outer)")
    if t.fragments:
        causes.append(
            f"{t.fragments} IP fragments (tshark counts one frame per reassembled datagram, nta every fragment)"
        )
    if n.bad.get("truncated_transport"):
        causes.append(f"{n.bad['truncated_transport']} packets with a header cut by the snap length (nta keeps them)")
    if only_t and n.bad:
        causes.append(f"nta bad packets {n.bad}")
    if t.stream_pkts.get(proto, 0) != t.pkts.get(proto, 0):
        causes.append(
            f"{t.stream_pkts[proto] - t.pkts[proto]} frames in a tshark stream but not in its conversation table"
        )
    if t.error:
        causes.append(f"tshark: {t.error}")
    if only_t or only_n:
        notes.append(
            f"pairs only in tshark {len(only_t)} (-{sum(only_t.values())}), only in nta {len(only_n)} (+{sum(only_n.values())})"
        )
        accounted += sum(only_n.values()) - sum(only_t.values())
    notes += causes
    if accounted != dc and not t.tunnelled.get(proto):
        notes.append(f"UNEXPLAINED count residue {dc - accounted}")
    elif accounted != dc:
        notes.append(f"{dc - accounted} more from tunnelled frames' pair keys")
    elif (only_t or only_n) and not causes:
        notes.append("UNEXPLAINED pairs")
    if n.splits.get(proto, Counter()).get("other split"):
        notes.append("UNEXPLAINED nta split")
    if (dp or db) and not causes:
        notes.append("UNEXPLAINED packets/bytes")
    return "; ".join(notes)


def captures(args: list[str], samples: bool) -> list[tuple[str, Path]]:
    if args:
        return [(a, Path(a)) for a in args]
    found: list[tuple[str, Path]] = []
    if CORPUS.exists():
        found += [
            (str(p.relative_to(CORPUS)), p) for p in sorted(CORPUS.rglob("*")) if p.name.endswith(CAPTURE_SUFFIXES)
        ]
    if samples:
        found += [(f"sample_pcaps/{p.name}", p) for p in sorted(SAMPLES.iterdir()) if p.name.endswith(CAPTURE_SUFFIXES)]
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--samples", action="store_true", help="also cross-check sample_pcaps/")
    ap.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    ns = ap.parse_args()
    if shutil.which("tshark") is None:
        print("tshark not found: apt-get install -y tshark", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    version = subprocess.run(["tshark", "--version"], capture_output=True, text=True, check=False).stdout
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    lines = [
        f"tshark: {version.splitlines()[0].rstrip('.') if version else '?'}; nta at commit {commit.stdout.strip() or '?'}",
        "",
        "Columns: conversations (tshark conv rows / nta flows), packets (tshark conv frames / nta orig_pkts+resp_pkts),",
        "IP bytes (innermost IP length over tshark's TCP/UDP frames / nta orig_ip_bytes+resp_ip_bytes). `=` marks exact agreement.",
        "",
        "| file | TCP convs t/n | TCP pkts t/n | TCP IP bytes t/n | UDP convs t/n | UDP pkts t/n | UDP IP bytes t/n | why |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines), flush=True)
    exact = total = unexplained = 0
    for name, path in captures(ns.captures, ns.samples):
        t, n = run_tshark(path), run_nta(path)
        cells = []
        for proto in ("tcp", "udp"):
            for a, b in (
                (t.convs.get(proto, 0), n.flows.get(proto, 0)),
                (t.pkts.get(proto, 0), n.pkts.get(proto, 0)),
                (t.ip_bytes.get(proto, 0), n.ip_bytes.get(proto, 0)),
            ):
                cells.append(f"= {a}" if a == b else f"{a} / {b}")
        why = "; ".join(f"{p.upper()}: {w}" for p in ("tcp", "udp") if (w := explain(p, t, n)))
        if n.error:
            why = f"nta error: {n.error}; " + why
        total += 1
        exact += all(c.startswith("=") for c in cells)
        unexplained += "UNEXPLAINED" in why or bool(n.error)
        row = f"| {name} | " + " | ".join(cells) + f" | {why} |"
        lines.append(row)
        print(row, flush=True)
    tail = f"\n{total} captures: {exact} agree exactly on all six figures; {unexplained} with unexplained differences."
    lines.append(tail)
    print(tail)
    if ns.out:
        ns.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
