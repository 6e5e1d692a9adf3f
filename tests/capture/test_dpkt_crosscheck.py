"""Frame by frame against dpkt: the packet nta finds inside each frame is the one dpkt finds.

dpkt (the project's packet library, and the slow path for 802.11) decodes every frame of the link-layer and
tunnel samples and of the shared corpus's tunnel and PPPoE captures down to the innermost IP packet; nta's row
for that frame must have the same addresses, protocol and ports, and name the same tunnels. Where dpkt finds
no IP packet (ARP, PPP control, beacons), nta must have no row. dpkt has no VXLAN, Geneve, GTP-U, Teredo or
ERSPAN classes: their few header bytes are skipped here by their RFCs' lengths, and dpkt decodes what follows.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from capture_testlib import PCAPS, frames_read, need

from features.capture.source import PacketSource

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
SAMPLE_NAMES = sorted(
    p.name for p in SAMPLES.glob("*.pcap") if p.name.startswith(("tunnel-", "fmt-ppp", "fmt-cisco", "fmt-80211"))
)
CORPUS_NAMES = [
    "formats/tunnel-gre.pcap",
    "formats/tunnel-vxlan.pcap",
    "formats/tunnel-teredo.pcap",
    "formats/tunnel-erspan.pcap",
    "formats/tunnel-gre-pptp-variants.cap",
    "formats/pppoe-session.pcap",
    "formats/pppoe-over-qinq.pcap",
]

Inner = tuple[tuple[str, ...], dpkt.Packet]  # (tunnel kinds, outermost first; the innermost IP packet)


def _ppp(buf: bytes, framing: bool) -> dpkt.Packet | None:
    if framing and buf[:2] == b"\xff\x03":
        buf = buf[2:]
    if not buf:
        return None
    proto, rest = (buf[0], buf[1:]) if buf[0] & 1 else (struct.unpack(">H", buf[:2])[0], buf[2:])
    return {0x21: dpkt.ip.IP, 0x57: dpkt.ip6.IP6}.get(proto, lambda _b: None)(rest)


def _link(frame: bytes, linktype: int) -> dpkt.Packet | None:
    """The network-layer packet of a frame, as dpkt decodes it (None when it is not IP)."""
    if linktype == 1:
        eth = dpkt.ethernet.Ethernet(frame)
        net = eth.data
        if isinstance(net, dpkt.pppoe.PPPoE):
            net = net.data.data if isinstance(net.data, dpkt.ppp.PPP) else None
        return net
    if linktype in (9, 50):
        if frame[0] in (0x0F, 0x8F):
            return _ethertype(struct.unpack(">H", frame[2:4])[0], frame[4:])
        return _ppp(frame, True)
    if linktype == 104:
        return _ethertype(struct.unpack(">H", frame[2:4])[0], frame[4:])
    if linktype in (105, 127, 192):
        if linktype == 192:
            frame = frame[struct.unpack("<H", frame[2:4])[0] :]
        w = dpkt.radiotap.Radiotap(frame).data if linktype == 127 else dpkt.ieee80211.IEEE80211(frame)
        if not isinstance(w, dpkt.ieee80211.IEEE80211) or w.type != dpkt.ieee80211.DATA_TYPE or w.wep:
            return None
        body = w.data[4:] if getattr(w, "qos_data", None) is not None and w.order else w.data
        llc = dpkt.llc.LLC(body)
        return llc.data if llc.is_snap else None
    raise AssertionError(f"no dpkt decoding for link type {linktype} here")


def _ethertype(et: int, rest: bytes) -> dpkt.Packet | None:
    return {0x0800: dpkt.ip.IP, 0x86DD: dpkt.ip6.IP6}.get(et, lambda _b: None)(rest)


def _ip(pkt: object) -> dpkt.Packet | None:
    return pkt if isinstance(pkt, (dpkt.ip.IP, dpkt.ip6.IP6)) else None


def _raw_ip(buf: bytes) -> dpkt.Packet | None:
    return dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf) if buf[0] >> 4 == 6 else None


def _inner(ip: dpkt.Packet, kinds: tuple[str, ...] = ()) -> Inner:
    """Follow tunnels from an IP packet (dpkt decodes; tunnel headers dpkt lacks are skipped by their lengths)."""
    if len(kinds) == 3 or (isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset)):
        return kinds, ip
    p = ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt
    payload = ip.data
    if p in (4, 41) and _ip(payload):
        return _inner(payload, (*kinds, "ipip" if p == 4 else "6in4"))
    if p == 47:
        raw = bytes(payload)
        gre = dpkt.gre.GRE(raw)
        hl = 4 + struct.calcsize("!" + "".join(gre.opt_fields_fmts()[1]))
        body = raw[hl:]
        if gre.v == 0 and gre.p in (0x0800, 0x86DD) and _raw_ip(body):
            return _inner(_raw_ip(body), (*kinds, "gre"))
        if gre.v == 0 and gre.p == 0x6558:
            return _ether(body, (*kinds, "gre"))
        if gre.v == 0 and gre.p == 0x88BE:
            return _ether(body[8:] if gre.flags & 0x1000 else body, (*kinds, "erspan"))
        if gre.v == 0 and gre.p == 0x22EB:
            return _ether(body[12 + 8 * (body[11] & 1) :], (*kinds, "erspan"))
        if gre.v == 1 and body:
            return (*kinds, "pptp"), _ppp(body, True)
        return kinds, ip
    if p == 17 and isinstance(payload, dpkt.udp.UDP):
        u, data = payload, bytes(payload.data)
        if u.dport == 4789 and data[0] & 0x08:
            return _ether(data[8:], (*kinds, "vxlan"))
        if u.dport == 6081 and struct.unpack(">H", data[2:4])[0] == 0x6558:
            return _ether(data[8 + (data[0] & 0x3F) * 4 :], (*kinds, "geneve"))
        if 2152 in (u.sport, u.dport) and data[1] == 0xFF:
            hl, nxt = (12, data[11]) if data[0] & 0x07 else (8, 0)
            while nxt:
                hl, nxt = hl + data[hl] * 4, data[hl + data[hl] * 4 - 1]
            return _inner(_raw_ip(data[hl:]), (*kinds, "gtpu"))
        q = 0
        if 3544 in (u.sport, u.dport):
            q = 13 + data[2] + data[3] if data[:2] == b"\x00\x01" else 0
            q += 8 if data[q : q + 2] == b"\x00\x00" else 0
        six = data[q:]
        if len(six) >= 40 and six[0] >> 4 == 6 and 40 + struct.unpack(">H", six[4:6])[0] == len(six):
            teredo_addr = b"\x20\x01\x00\x00" in (six[8:12], six[24:28])
            if 3544 in (u.sport, u.dport) or teredo_addr:
                return _inner(dpkt.ip6.IP6(six), (*kinds, "teredo"))
    return kinds, ip


def _ether(frame: bytes, kinds: tuple[str, ...]) -> Inner:
    net = _ip(dpkt.ethernet.Ethernet(frame).data)
    return (kinds, net) if net is None else _inner(net, kinds)


def _ports(ip: dpkt.Packet) -> tuple[int, int]:
    t = ip.data
    if isinstance(t, (dpkt.tcp.TCP, dpkt.udp.UDP)):
        return t.sport, t.dport
    return -1, -1


def _addr(v: int, hi: int, lo: int) -> bytes:
    return (lo & 0xFFFFFFFF).to_bytes(4, "big") if v == 4 else (hi << 64 | lo).to_bytes(16, "big")


def _check(path: Path, linktype: int, monkeypatch: pytest.MonkeyPatch) -> int:
    frames = frames_read(path, monkeypatch)
    rows: dict[int, dict[str, int]] = {}
    tunnels: dict[int, str] = {}
    for b in PacketSource(path).batches():
        tunnels |= b.tunnels
        for i in range(len(b)):
            rows[int(b.cols["pkt_idx"][i])] = {k: int(v[i]) for k, v in b.cols.items()}
    checked = 0
    for idx, (_ts, frame) in enumerate(frames):
        net = _ip(_link(frame, linktype))
        if net is None:
            assert idx not in rows, f"frame {idx}: dpkt finds no IP packet, nta has a row"
            continue
        kinds, ip = _inner(net)
        if ip is None:  # a tunnel whose inner frame is not IP (ARP in VXLAN, PPP control in PPTP)
            assert idx not in rows, f"frame {idx}: dpkt finds no inner IP packet, nta has a row"
            continue
        row = rows[idx]
        v = 4 if isinstance(ip, dpkt.ip.IP) else 6
        got = (row["ip_version"], _addr(v, row["src_hi"], row["src_lo"]), _addr(v, row["dst_hi"], row["dst_lo"]))
        assert got == (v, ip.src, ip.dst), f"frame {idx}"
        if not (v == 4 and ip.offset):
            assert (row["sport"], row["dport"]) == _ports(ip), f"frame {idx}"
        text = tunnels.get(row["tunnel"], "")
        assert (tuple(text.split(" ")[0].split("/")) if text else ()) == kinds, f"frame {idx}: {text!r} vs {kinds}"
        checked += 1
    return checked


def _linktype(path: Path) -> int:
    head = path.read_bytes()[:24]
    return struct.unpack("<I", head[20:24])[0] & 0xFFFF


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_samples_frame_by_frame_against_dpkt(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = SAMPLES / name
    assert _check(path, _linktype(path), monkeypatch) > 0


@pytest.mark.corpus
@pytest.mark.parametrize("rel", CORPUS_NAMES)
def test_corpus_tunnels_frame_by_frame_against_dpkt(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = need(PCAPS / rel)
    assert _check(path, _linktype(path), monkeypatch) > 0
