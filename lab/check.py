#!/usr/bin/env python3
"""Self-check of a lab run's labels against its capture (stdlib only).

    python3 lab/check.py RUNDIR        # reads RUNDIR/capture.pcap, labels.csv, lab-meta.json

Checks, for the join rule nta uses (a flow takes a window's class when its first packet is inside
[start_utc, end_utc] and one endpoint is in `attackers`, the other in `victims`):
  * every attack window matched packets and flows;
  * no IP packet from or to an attacker-only address (attacker hosts, spoof ranges) lies outside every window
    naming that address (run.py pins IPv6 neighbour entries, so not even neighbour discovery should);
  * no flow is what nta's join calls "unexplained": a flow touching an address named in any window's
    attackers (the normal window's too) that matches no window at its first packet;
  * windows of one attacker overlap only when they have the same class.
Writes RUNDIR/check.json and prints a table. Exit 0 when all checks pass, 1 otherwise.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import json
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def parse_ts(s: str) -> float:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def read_pcap(path: Path):
    """Yield (ts, frame bytes) from a classic pcap (either byte order, usec or nsec)."""
    with open(path, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            return
        magic = gh[:4]
        endian, scale = {
            b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
            b"\xa1\xb2\xc3\xd4": (">", 1e-6),
            b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
            b"\xa1\xb2\x3c\x4d": (">", 1e-9),
        }[magic]
        linktype = struct.unpack(endian + "I", gh[20:24])[0]
        assert linktype == 1, f"expected Ethernet captures, got linktype {linktype}"
        hdr = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _ = hdr.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                return
            yield sec + frac * scale, data


def decode(frame: bytes):
    """(src, dst, proto, sport, dport, icmp6_type) as text addresses, or None for non-IP frames."""
    et = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if et == 0x8100:
        et = struct.unpack_from("!H", frame, 16)[0]
        off = 18
    if et == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        frag = struct.unpack_from("!H", frame, off + 6)[0] & 0x1FFF
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16 : off + 20])
        sp = dp = 0
        if proto in (6, 17) and frag == 0 and len(frame) >= off + ihl + 4:
            sp, dp = struct.unpack_from("!HH", frame, off + ihl)
        return src, dst, proto, sp, dp, -1
    if et == 0x86DD and len(frame) >= off + 40:
        nh = frame[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24 : off + 40])
        p = off + 40
        # skip hop-by-hop / routing / destination options headers
        while nh in (0, 43, 60) and len(frame) >= p + 2:
            nh, hl = frame[p], (frame[p + 1] + 1) * 8
            p += hl
        sp = dp = 0
        t6 = -1
        if nh in (6, 17) and len(frame) >= p + 4:
            sp, dp = struct.unpack_from("!HH", frame, p)
        elif nh == 58 and len(frame) > p:
            t6 = frame[p]
        return src, dst, nh, sp, dp, t6
    return None


class AddrSet:
    def __init__(self, spec: str, lab_nets: list):
        self.any = spec.strip() == "*"
        self.nets = [] if self.any else [ipaddress.ip_network(x, strict=False) for x in spec.split()]
        self.lab = lab_nets

    def __contains__(self, a) -> bool:
        if self.any:
            return any(a in n for n in self.lab if n.version == a.version) or a.is_multicast
        return any(a.version == n.version and a in n for n in self.nets)


@dataclass
class Window:
    """One row of labels.csv with its parsed times and address sets, and what the capture put in it."""

    row: dict[str, str]
    start: float
    end: float
    A: AddrSet  # attackers
    V: AddrSet  # victims
    attack: bool
    packets: int = 0
    flows: set[tuple] = field(default_factory=set)


def main() -> int:
    run = Path(sys.argv[1])
    meta = json.loads((run / "lab-meta.json").read_text())
    lab_nets = [ipaddress.ip_network(n) for n in meta["lab_nets"]]
    with open(run / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    wins: list[Window] = []
    for r in rows:
        wins.append(
            Window(
                row=r,
                start=parse_ts(r["start_utc"]),
                end=parse_ts(r["end_utc"]),
                A=AddrSet(r["attackers"], lab_nets),
                V=AddrSet(r["victims"], lab_nets),
                attack=r["class"] != "normal",
            )
        )
    attack_wins = [w for w in wins if w.attack]
    atk_only = [ipaddress.ip_network(a) for a in meta["attacker_addrs"] + meta["attacker_only_ranges"]]
    cache: dict[str, tuple] = {}

    def info(a: str) -> tuple:
        if a not in cache:
            ip = ipaddress.ip_address(a)
            amask = vmask = 0
            for i, w in enumerate(attack_wins):
                if ip in w.A:
                    amask |= 1 << i
                if ip in w.V:
                    vmask |= 1 << i
            amask_all = vmask_all = 0
            for i, w in enumerate(wins):
                if ip in w.A:
                    amask_all |= 1 << i
                if ip in w.V:
                    vmask_all |= 1 << i
            cache[a] = (
                ip,
                amask,
                vmask,
                any(ip.version == n.version and ip in n for n in atk_only),
                amask_all,
                vmask_all,
            )
        return cache[a]

    flows_first: dict[tuple, int] = {}  # endpoint key -> number of its current flow
    flows_last: dict[tuple, float] = {}
    n_flows = 0
    flow_win: dict[tuple, int] = {}
    n_pkts = n_ip = 0
    leaks: list[str] = []
    n_leaks = 0
    unexplained: list[str] = []
    n_unexplained = 0
    t_first = t_last = None
    for ts, frame in read_pcap(run / "capture.pcap"):
        n_pkts += 1
        t_first = ts if t_first is None else t_first
        t_last = ts
        d = decode(frame)
        if d is None:
            continue
        n_ip += 1
        src, dst, proto, sp, dp, t6 = d
        _, a_s, v_s, o_s, aa_s, va_s = info(src)
        _, a_d, v_d, o_d, aa_d, va_d = info(dst)
        key = (proto, *sorted([(src, sp), (dst, dp)]))
        # a flow: same protocol and endpoint pair, a new one after 30 s of silence (as nta's idle timeout would)
        last = flows_last.get(key)
        first = last is None or ts - last > 30.0
        flows_last[key] = ts
        if first:
            n_flows += 1
            key = (*key, n_flows)
            flows_first[key[:-1]] = n_flows
        else:
            key = (*key, flows_first[key])
        cand = (a_s & v_d) | (a_d & v_s)
        hit = False
        i = 0
        while cand:
            if cand & 1:
                w = attack_wins[i]
                if w.start <= ts <= w.end:
                    w.packets += 1
                    hit = True
                    if first:
                        w.flows.add(key)
            cand >>= 1
            i += 1
        if first and (aa_s or aa_d):
            # nta's join: a flow touching an address named in any window's attackers must match some window
            # (normal ones included) at its first packet, or it is "unexplained" (no label)
            cand_all, j, ok = (aa_s & va_d) | (aa_d & va_s), 0, False
            while cand_all and not ok:
                if cand_all & 1 and wins[j].start <= ts <= wins[j].end:
                    ok = True
                cand_all >>= 1
                j += 1
            if not ok:
                n_unexplained += 1
                if len(unexplained) < 20:
                    unexplained.append(
                        f"{dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()} {src}:{sp} -> {dst}:{dp} proto {proto}"
                        + (f" icmp6 type {t6}" if t6 >= 0 else "")
                    )
        if (o_s or o_d) and not hit:
            # outside every window of this attacker address?
            inside = False
            for a_mask in ((a_s if o_s else 0), (a_d if o_d else 0)):
                j = 0
                while a_mask:
                    if a_mask & 1 and attack_wins[j].start <= ts <= attack_wins[j].end:
                        inside = True
                    a_mask >>= 1
                    j += 1
            if not inside:
                n_leaks += 1
                if len(leaks) < 20:
                    leaks.append(
                        f"{dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()} {src}:{sp} -> {dst}:{dp} proto {proto}"
                        + (f" icmp6 type {t6}" if t6 >= 0 else "")
                    )
        _ = flow_win
    # overlap check: windows of one attacker address with different classes
    overlaps = []
    for i, w1 in enumerate(attack_wins):
        for w2 in attack_wins[i + 1 :]:
            if w1.row["class"] == w2.row["class"]:
                continue
            if w1.start < w2.end and w2.start < w1.end:
                s1 = set(w1.row["attackers"].split()) & set(w2.row["attackers"].split())
                if s1:
                    overlaps.append(f"{w1.row['scenario']} / {w2.row['scenario']}: {sorted(s1)}")
    table: list[dict[str, Any]] = []
    empty = []
    for w in wins:
        r = w.row
        ent: dict[str, Any] = {
            "scenario": r["scenario"],
            "class": r["class"],
            "packets": w.packets,
            "flows": len(w.flows),
            "seconds": round(w.end - w.start, 1),
            "attackers": r["attackers"],
            "victims": r["victims"],
            "tool": r["tool"],
            "params": r["params"] if r["class"] != "normal" else "",
        }
        if r["class"] == "normal":
            ent["packets"] = ent["flows"] = None
        table.append(ent)
        if w.attack and w.packets == 0:
            empty.append(r["scenario"])
    attack_flow_keys = set().union(*[w.flows for w in attack_wins]) if attack_wins else set()
    res = {
        "ok": not empty and not n_leaks and not overlaps and not n_unexplained,
        "unexplained_flows_nta_rule": n_unexplained,
        "unexplained_examples": unexplained,
        "packets_total": n_pkts,
        "ip_packets": n_ip,
        "flows_total": n_flows,
        "flows_attack": len(attack_flow_keys),
        "flows_normal": n_flows - len(attack_flow_keys),
        "capture_first_utc": dt.datetime.fromtimestamp(t_first or 0, dt.UTC).isoformat(),
        "capture_last_utc": dt.datetime.fromtimestamp(t_last or 0, dt.UTC).isoformat(),
        "empty_windows": empty,
        "attacker_packets_outside_windows": n_leaks,
        "leak_examples": leaks,
        "overlapping_windows": overlaps,
        "windows": table,
    }
    (run / "check.json").write_text(json.dumps(res, indent=1))
    print(f"{'scenario':32s} {'class':6s} {'packets':>8s} {'flows':>6s} {'secs':>6s}")
    for e in table:
        print(
            f"{e['scenario'][:32]:32s} {e['class']:6s} {e['packets'] if e['packets'] is not None else '-':>8} "
            f"{e['flows'] if e['flows'] is not None else '-':>6} {e['seconds']:>6}"
        )
    print(
        f"packets {n_pkts} (IP {n_ip}), flows {n_flows} (attack {len(attack_flow_keys)}), "
        f"empty windows {empty}, attacker packets outside windows {n_leaks}, overlaps {len(overlaps)}, "
        f"flows nta would call unexplained {n_unexplained}"
    )
    for ln in leaks[:10]:
        print("  leak:", ln)
    for ln in unexplained[:10]:
        print("  unexplained:", ln)
    print("LABEL CHECK", "PASSED" if res["ok"] else "FAILED")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
