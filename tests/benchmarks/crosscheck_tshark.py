#!/usr/bin/env python3
"""Cross-check nta's TCP/UDP flows against ``tshark -q -z conv,tcp -z conv,udp`` on every corpus capture.

Usage::

    python tests/benchmarks/crosscheck_tshark.py [--samples] [--out /work/notes/tshark-crosscheck.md] [CAPTURE...]

Without CAPTURE arguments it walks ``../shared/data/pcaps`` (and ``sample_pcaps/`` with ``--samples``).
Needs ``tshark`` on PATH (Debian package ``tshark``); prints a Markdown table and optionally saves it.

What is compared, per capture and per transport (TCP, UDP):

* conversations: rows of tshark's ``conv,tcp`` / ``conv,udp`` tables vs nta flows with that ``proto``;
* packets: tshark's conversation frame totals vs nta's ``orig_pkts + resp_pkts``;
* IP bytes: over the frames tshark dissects as TCP (UDP), the length of the IP layer that carries the
  (innermost) TCP (UDP) header (IPv4 total length, IPv6 payload length + 40) vs nta's
  ``orig_ip_bytes + resp_ip_bytes``. tshark's conversation "Bytes" are frame bytes (link headers
  included, humanised as "kB" in 4.0), so they are not used.

The "why" column is computed from the data, not written by hand. Per endpoint pair (address:port both
ways, VLAN ignored) it lines up tshark's frames (time order) with nta's flows of that pair (time order):
when both tools count the same packets for the pair, every place where exactly one of them starts a new
flow/conversation is classified by the packet there and the packets before it (nta: idle timeout, SYN or
late packet after a close/reset, a responder's SYN against the originator's start sequence, half-open
SYN-ACK reuse; tshark: a SYN against the base seq it holds for that side, a UDP conversation split by a
dissector). Pairs present in one tool only, pairs in several VLANs, and pairs whose packets the tools
count differently are attributed to capture-level causes (tunnels, IP fragments, snap-length cuts). The
causes must add up to the difference in conversations; whatever does not is printed as "UNEXPLAINED".
"""

from __future__ import annotations

import argparse
import bisect
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


Pair = tuple[str, str]


@dataclass(frozen=True)
class Frame:
    """One TCP/UDP frame as tshark dissects it (its last TCP/UDP layer and the IP layer carrying it)."""

    t: float  # capture time, s
    num: int  # frame number
    src: str  # sender "address:port"
    flags: int  # TCP flags (0 for UDP)
    seq: int  # raw TCP sequence number (0 for UDP)
    ack: int  # raw TCP acknowledgement number (0 for UDP)
    stream: str  # tshark's tcp.stream / udp.stream


@dataclass(frozen=True)
class Flow:
    """One nta flow, as much of it as the comparison needs."""

    vlan: int | None
    ts: float
    ts_end: float
    pkts: int
    history: str
    flow_id: int


@dataclass
class TsharkSide:
    """What tshark reports for one capture."""

    convs: dict[str, int] = field(default_factory=dict)  # "tcp"/"udp" -> conversation rows
    pkts: dict[str, int] = field(default_factory=dict)  # frames in those conversations
    stream_pkts: dict[str, int] = field(default_factory=dict)  # frames with a stream id (ICMP quotes excluded)
    ip_bytes: dict[str, int] = field(default_factory=dict)  # length of the IP layer carrying TCP/UDP, over those frames
    tunnelled: dict[str, int] = field(default_factory=dict)  # TCP/UDP frames with more than one IP layer
    outer: int = 0  # frames whose UDP layer carries a tunnel (VXLAN, Geneve, GTP-U, Teredo): outer conversations
    fragments: int = 0  # frames that are IP fragments
    frames: dict[str, dict[Pair, list[Frame]]] = field(default_factory=dict)  # proto -> endpoint pair -> frames
    error: str = ""


def _pair(a: str, ap: str, b: str, bp: str) -> Pair:
    x, y = f"{a}:{ap}", f"{b}:{bp}"
    return (x, y) if x <= y else (y, x)


def _last(v: str) -> str:
    return v.split(",")[-1] if v else ""


def run_tshark(path: Path) -> TsharkSide:
    """Run tshark twice on one capture: the conversation tables, and per-frame fields (streams, bytes)."""
    side = TsharkSide()
    conv = subprocess.run(
        [*TSHARK, "-r", str(path), "-q", "-z", "conv,tcp", "-z", "conv,udp"],
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
        "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags", "tcp.seq_raw",
        "tcp.ack_raw", "frame.number", "frame.protocols", "frame.time_epoch",
    ]  # fmt: skip
    args = [*TSHARK, "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    fields = subprocess.run(args + [x for n in names for x in ("-e", n)], capture_output=True, text=True, check=False)
    if fields.returncode != 0 and not fields.stdout:
        raise RuntimeError(f"tshark -T fields failed on {path}: {fields.stderr.strip()}")
    for proto in ("tcp", "udp"):
        side.convs.setdefault(proto, 0)
        side.pkts.setdefault(proto, 0)
        side.stream_pkts[proto] = side.ip_bytes[proto] = side.tunnelled[proto] = 0
        side.frames[proto] = {}
    for line in fields.stdout.splitlines():
        f = dict(zip(names, (line.split("\t") + [""] * len(names))[: len(names)], strict=True))
        mf, off = f["ip.flags.mf"].split(","), f["ip.frag_offset"].split(",")
        if "1" in mf or any(x not in ("", "0") for x in off) or f["ipv6.fraghdr.ident"]:
            side.fragments += 1
        if not (f["tcp.stream"] or f["udp.stream"]) or _icmp_error(f["icmp.type"], f["icmpv6.type"]):
            # No TCP/UDP, or the TCP/UDP header quoted inside an ICMP error: tshark's conversation tables
            # skip it (nta keeps the frame as an ICMP record).
            continue
        layers = f["frame.protocols"].split(":")
        ip_layers = sum(x in ("ip", "ipv6") for x in layers)
        side.outer += any(a == "udp" and b in _UDP_TUNNELS for a, b in itertools.pairwise(layers))
        for proto in ("tcp", "udp"):
            if not f[f"{proto}.stream"]:
                continue
            src, dst, ip_len = _carrier(f, layers, proto)
            side.stream_pkts[proto] += 1
            side.tunnelled[proto] += ip_layers > 1
            side.ip_bytes[proto] += ip_len
            sport, dport = _last(f[f"{proto}.srcport"]), _last(f[f"{proto}.dstport"])
            tcp = proto == "tcp"
            frame = Frame(
                t=float(f["frame.time_epoch"] or 0),
                num=int(f["frame.number"]),
                src=f"{src}:{sport}",
                flags=int(_last(f["tcp.flags"]) or "0", 16) if tcp else 0,
                seq=int(_last(f["tcp.seq_raw"]) or "0") if tcp else 0,
                ack=int(_last(f["tcp.ack_raw"]) or "0") if tcp else 0,
                stream=_last(f[f"{proto}.stream"]),
            )
            side.frames[proto].setdefault(_pair(src, sport, dst, dport), []).append(frame)
    for per_pair in side.frames.values():
        for frames in per_pair.values():
            frames.sort(key=lambda x: (x.t, x.num))  # nta orders a flow's packets by time (stable)
    return side


# Teredo on ports other than 3544 (client <-> relay) is decoded by a heuristic Wireshark leaves off by default;
# nta (like Zeek) decodes it, so the cross-check turns it on.
TSHARK = ("tshark", "-n", "--enable-heuristic", "teredo_udp")
_UDP_TUNNELS = frozenset({"vxlan", "geneve", "gtp", "teredo"})
_ICMP_ERRORS = {"3", "4", "5", "11", "12"}
_ICMP6_ERRORS = {"1", "2", "3", "4"}


def _icmp_error(icmp_t: str, icmp6_t: str) -> bool:
    return bool(set(icmp_t.split(",")) & _ICMP_ERRORS or set(icmp6_t.split(",")) & _ICMP6_ERRORS)


def _carrier(f: dict[str, str], layers: list[str], proto: str) -> tuple[str, str, int]:
    """Source, destination and IP length of the IP layer that carries the frame's last ``proto`` layer.

    tshark lists each field's occurrences comma-separated in layer order, but IPv4 and IPv6 fields
    separately; ``frame.protocols`` (e.g. ``eth:ethertype:ip:udp:teredo:ipv6:tcp``) gives the order, so
    the carrier is the k-th IPv4 or IPv6 occurrence. For a tunnel this is the inner IP layer when the inner
    packet is TCP/UDP, else the outer one (VXLAN carrying ICMP: the outer UDP conversation).
    """
    j = max((i for i, x in enumerate(layers) if x == proto), default=-1)
    k = max((i for i, x in enumerate(layers[:j]) if x in ("ip", "ipv6")), default=-1)
    kind = layers[k] if k >= 0 else ("ipv6" if f["ipv6.src"] else "ip")
    n = layers[:k].count(kind) if k >= 0 else -1
    srcs, dsts = f[f"{kind}.src"].split(","), f[f"{kind}.dst"].split(",")
    lens = f["ip.len" if kind == "ip" else "ipv6.plen"].split(",")
    ip_len = int(lens[n] or 0) + (40 if kind == "ipv6" else 0) if lens != [""] else 0
    return srcs[n], dsts[n], ip_len


@dataclass
class NtaSide:
    flows: dict[str, int] = field(default_factory=dict)
    pkts: dict[str, int] = field(default_factory=dict)
    ip_bytes: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, dict[Pair, list[Flow]]] = field(default_factory=dict)  # flows per endpoint pair, by time
    bad: dict[str, int] = field(default_factory=dict)
    error: str = ""


def run_nta(path: Path) -> NtaSide:
    from features.flows.extract import extract_flows

    side = NtaSide()
    try:
        ext = extract_flows([path])
    except Exception as e:  # the table must show every file; the corpus test asserts there are no errors
        side.error = f"{type(e).__name__}: {e}"
        return side
    side.bad = dict(ext.bad_packets)
    rows = ext.flows.to_pylist()
    for proto in ("tcp", "udp"):
        mine = [r for r in rows if r["proto"] == proto]
        side.flows[proto] = len(mine)
        side.pkts[proto] = sum(r["orig_pkts"] + r["resp_pkts"] for r in mine)
        side.ip_bytes[proto] = sum(r["orig_ip_bytes"] + r["resp_ip_bytes"] for r in mine)
        by_pair: dict[Pair, list[Flow]] = {}
        for r in mine:
            key = _pair(r["orig_h"], str(r["orig_p"]), r["resp_h"], str(r["resp_p"]))
            flow = Flow(
                vlan=r["vlan"],
                ts=r["ts"].timestamp(),
                ts_end=r["ts_end"].timestamp(),
                pkts=r["orig_pkts"] + r["resp_pkts"],
                history=r["history"],
                flow_id=r["flow_id"],
            )
            by_pair.setdefault(key, []).append(flow)
        for flows in by_pair.values():
            flows.sort(key=lambda x: (x.ts, x.ts_end, x.flow_id))
        side.pairs[proto] = by_pair
    return side


# Causes of a flow boundary that only one tool draws (the packets of the pair agree). tshark 4.0's rule
# (packet-tcp.c): a SYN without ACK whose seq differs from the base seq tshark holds for that side of the
# conversation (the side's first seq, or the peer's SYN-ACK ack - 1) starts a new conversation; nothing
# else does. nta's rule is features.flows.schema's (Zeek's): also after a close/reset, and against the
# originator's start sequence whichever side sends the SYN.
IDLE = "nta: idle gap > {t} s (Zeek's timeout, tshark has none)"
SYN_AFTER_END = (
    "nta: SYN after a close/reset (Zeek: new connection. tshark: same conversation, the SYN's seq is that"
    " side's first or equal to it)"
)
LATE_AFTER_END = "nta: packet > 5 s after a close/reset (Zeek's tcp_close_delay/tcp_reset_delay)"
PEER_SYN = (
    "nta: responder's first SYN on an open flow, seq unlike the originator's start sequence (Zeek's IsReuse"
    " compares with the originator's, tshark only with that side's own earlier seq)"
)
HALF_OPEN = "nta: SYN-ACK with a new seq while the originator is silent (Zeek's half-open reuse, tshark never splits on a SYN-ACK)"
T_SYN_ACK_BASE = (
    "tshark: SYN whose seq differs from the base tshark took for that side from the peer's SYN-ACK (ack - 1)."
    " nta: the peer's first packet had SYN+ACK+FIN/RST (no flip), so the SYN's seq equals the originator's"
    " start sequence: no reuse (Zeek would split: a SYN after either side's FIN, BUGS-flows.md #4)"
)
T_UDP = "tshark splits one 5-tuple into several UDP conversations (dissector-made, e.g. SNMP)"


def _ended_at(frames: list[Frame]) -> float | None:
    """Time the frames (one nta flow) were ended by nta's rule (a RST, or FINs from both sides), else None."""
    fin: set[str] = set()
    for f in frames:
        if f.flags & 0x01:
            fin.add(f.src)
        if f.flags & 0x04 or len(fin) == 2:
            return f.t
    return None


def _originator(frames: list[Frame]) -> str:
    """The sender nta takes as originator: the first packet's, or its receiver for a plain SYN-ACK."""
    first = frames[0]
    if first.flags & 0x17 == 0x12:
        return next((f.src for f in frames if f.src != first.src), "?")
    return first.src


def _tshark_base(frames: list[Frame], side: str) -> int | None:
    """The base seq tshark holds for ``side`` over ``frames`` (one conversation so far), None if unset."""
    for f in frames:
        if f.src == side:
            return f.seq if f.flags & 0x02 else (f.seq - 1) & 0xFFFFFFFF
        if f.flags & 0x12 == 0x12:
            return (f.ack - 1) & 0xFFFFFFFF
    return None


def _nta_only(proto: str, frames: list[Frame], prev: int, tprev: int, i: int, timeout: float) -> str:
    """Why nta starts a flow at frames[i] (its flow began at frames[prev], tshark's at frames[tprev])."""
    f = frames[i]
    if f.t - frames[i - 1].t > timeout:
        return IDLE.format(t=f"{timeout:.0f}")
    if proto == "udp":
        return "UNEXPLAINED nta UDP split"
    syn, synack = f.flags & 0x12 == 0x02, f.flags & 0x12 == 0x12
    base = _tshark_base(frames[tprev:i], f.src)
    if syn and base is not None and base != f.seq:
        return "UNEXPLAINED nta split where tshark's rule should split too"
    end = _ended_at(frames[prev:i])
    if end is not None and syn:
        return SYN_AFTER_END
    if end is not None and f.t > end + 5.0:
        return LATE_AFTER_END
    if syn and f.src != _originator(frames[prev:i]) and base is None:
        return PEER_SYN
    if synack and all(g.src == f.src for g in frames[prev:i]):
        return HALF_OPEN
    return f"UNEXPLAINED nta split at TCP flags {f.flags:#05x}"


def _tshark_only(proto: str, frames: list[Frame], prev: int, tprev: int, i: int) -> str:
    """Why tshark starts a conversation at frames[i] (its previous began at frames[tprev]) and nta does not."""
    f = frames[i]
    if proto == "udp":
        return T_UDP
    before = frames[tprev:i]
    if f.flags & 0x12 == 0x02 and not any(g.src == f.src for g in before) and _tshark_base(before, f.src) != f.seq:
        first = frames[prev]
        if first.src != f.src and first.flags & 0x12 == 0x12 and first.flags & 0x05 and first.seq == f.seq:
            return T_SYN_ACK_BASE
    return f"UNEXPLAINED tshark split at TCP flags {f.flags:#05x}"


def _compare_pair(proto: str, frames: list[Frame], flows: list[Flow], timeout: float, why: Counter[str]) -> int:
    """Attribute each flow boundary that only one tool draws in one pair; returns nta minus tshark boundaries."""
    cuts_n: set[int] = set(itertools.accumulate(fl.pkts for fl in flows[:-1]))
    cuts_t = {i for i in range(1, len(frames)) if frames[i].stream != frames[i - 1].stream}
    starts_n, starts_t = sorted(cuts_n | {0}), sorted(cuts_t | {0})

    def before(starts: list[int], i: int) -> int:  # the start of the flow (conversation) that holds frames[i - 1]
        return starts[bisect.bisect_left(starts, i) - 1]

    for i in sorted(cuts_n - cuts_t):
        why["+" + _nta_only(proto, frames, before(starts_n, i), before(starts_t, i), i, timeout)] += 1
    for i in sorted(cuts_t - cuts_n):
        why["-" + _tshark_only(proto, frames, before(starts_n, i), before(starts_t, i), i)] += 1
    streams = len({f.stream for f in frames})
    if streams != len(cuts_t) + 1:  # tshark went back to an earlier conversation
        why[f"-UNEXPLAINED tshark resumed a conversation ({len(cuts_t) + 1 - streams})"] += 1
    return len(flows) - streams


def explain(proto: str, t: TsharkSide, n: NtaSide, tcp_timeout: float = 300.0, udp_timeout: float = 60.0) -> str:
    """Account for the differences of one transport, pair by pair and boundary by boundary."""
    dc = n.flows.get(proto, 0) - t.convs.get(proto, 0)
    dp = n.pkts.get(proto, 0) - t.pkts.get(proto, 0)
    db = n.ip_bytes.get(proto, 0) - t.ip_bytes.get(proto, 0)
    if dc == 0 and dp == 0 and db == 0:
        return ""
    timeout = tcp_timeout if proto == "tcp" else udp_timeout
    t_pairs, n_pairs = t.frames.get(proto, {}), n.pairs.get(proto, {})
    why: Counter[str] = Counter()
    accounted = 0
    only_t = {k: len({f.stream for f in v}) for k, v in t_pairs.items() if k not in n_pairs}
    only_n = {k: len(v) for k, v in n_pairs.items() if k not in t_pairs}
    uneven = 0  # pairs whose packets the two tools count differently (fragments, tunnels, snap length)
    for key in t_pairs.keys() & n_pairs.keys():
        frames, flows = t_pairs[key], n_pairs[key]
        vlans = len({fl.vlan for fl in flows})
        streams = len({f.stream for f in frames})
        if vlans > 1:
            why["+VLAN in nta's key"] += vlans - 1
            accounted += vlans - 1
            if len(flows) - streams != vlans - 1:
                why["UNEXPLAINED VLAN pair residue"] += 1
            continue
        if sum(fl.pkts for fl in flows) != len(frames):
            uneven += 1
            if len(flows) != streams:
                for a, b in itertools.pairwise(flows):
                    if b.ts - a.ts_end > timeout:
                        why["+" + IDLE.format(t=f"{timeout:.0f}")] += 1
                        accounted += 1
            continue
        accounted += _compare_pair(proto, frames, flows, timeout, why)
    notes = [f"{k[0]}{v} {k[1:]}" if k[0] in "+-" else k for k, v in sorted(why.items(), key=lambda x: x[0][1:])]
    causes = []
    if t.tunnelled.get(proto) and t.fragments:
        causes.append(
            f"{t.tunnelled[proto]} tunnelled frames, some in fragmented tunnel packets (tshark reassembles those and"
            " decodes the packets inside; nta decapsulates only whole tunnel packets and keeps fragments as they are)"
        )
    if proto == "udp" and t.outer:
        causes.append(
            f"{t.outer} frames in the outer UDP conversations of tunnels (tshark lists them beside the inner ones;"
            " nta keeps only the inner flows, or only the outer with --no-decap)"
        )
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
    if uneven:
        notes.append(f"{uneven} pairs with packets counted differently")
    notes += causes
    tunnels = t.tunnelled.get(proto) or (proto == "udp" and t.outer)
    if accounted != dc and not tunnels:
        notes.append(f"UNEXPLAINED count residue {dc - accounted}")
    elif accounted != dc:
        notes.append(f"{dc - accounted} more from tunnelled frames' pair keys")
    elif (only_t or only_n or uneven) and not causes:
        notes.append("UNEXPLAINED pairs")
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
        "IP bytes (length of the IP layer carrying TCP/UDP, over tshark's TCP/UDP frames / nta orig_ip_bytes+resp_ip_bytes). `=` marks exact agreement.",
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
