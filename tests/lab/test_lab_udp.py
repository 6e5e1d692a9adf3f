"""The lab's modern UDP agents (lab/agents.py quic, call, udpd) over loopback: the QUIC-shaped session's shape on
the wire, STUN's XOR-MAPPED-ADDRESS, the media server's stream back and its end, and the lab-only rules."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import socket
import struct
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

AGENTS_PY = Path(__file__).resolve().parents[2] / "lab" / "agents.py"


@pytest.fixture
def agents(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """lab/agents.py with loopback counted as a lab range (the lab itself runs in namespaces)."""
    spec = importlib.util.spec_from_file_location("nta_lab_agents_udp", AGENTS_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "LAB_NETS", (*mod.LAB_NETS, ipaddress.ip_network("127.0.0.0/8")))
    return mod


def _server(target, port_sock: socket.socket, *args: object) -> None:  # type: ignore[no-untyped-def]
    threading.Thread(target=target, args=(port_sock, *args), daemon=True).start()


def _udp() -> socket.socket:
    sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sk.bind(("127.0.0.1", 0))
    return sk


class Tap:
    """A UDP relay between client and server that records (direction, size, first byte) of every datagram."""

    def __init__(self, server_port: int) -> None:
        self.sk = _udp()
        self.port = self.sk.getsockname()[1]
        self.server = ("127.0.0.1", server_port)
        self.client: tuple[str, int] | None = None
        self.seen: list[tuple[str, int, int]] = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        while True:
            data, peer = self.sk.recvfrom(4096)
            if peer == self.server:
                self.seen.append(("s", len(data), data[0]))
                assert self.client is not None
                self.sk.sendto(data, self.client)
            else:
                self.client = peer
                self.seen.append(("c", len(data), data[0]))
                self.sk.sendto(data, self.server)


def test_quic_session_has_quics_shape(agents: ModuleType) -> None:
    srv = _udp()
    _server(agents._serve_quic, srv, __import__("random").Random(1))
    tap = Tap(srv.getsockname()[1])
    a = argparse.Namespace(
        host="127.0.0.1", port=tap.port, objects=3, size_mu=9.0, max_kb=64, think=0.05, idle=0.1, seed=5
    )
    agents.cmd_quic(a)
    time.sleep(0.2)
    seen = tap.seen
    assert seen[0] == ("c", 1200, 0xC3)  # a padded client Initial first
    assert [d for d, _, _ in seen[1:3]] == ["s", "s"] and all(b & 0x80 for _, _, b in seen[1:3])  # handshake flight
    assert seen[3][0] == "c" and seen[3][2] & 0xE0 == 0xE0  # client Handshake
    short = seen[4:]
    assert short and all(b & 0xC0 == 0x40 for _, _, b in short)  # then only short headers
    from_server = sum(n - 9 for d, n, _ in short if d == "s")
    assert 3 * 200 <= from_server <= 3 * 64 * 1024 and max(n for d, n, _ in short if d == "s") <= 1200
    acks = [n for d, n, _ in short if d == "c"]
    assert len(acks) >= 3 + 1  # three requests and a close at least, acks besides
    assert sum(1 for d, _, _ in short if d == "s") > len(acks) - 4  # far more data than acks, acks every 2-5


def test_stun_answers_with_the_clients_address(agents: ModuleType) -> None:
    srv = _udp()
    _server(agents._serve_stun, srv)
    with _udp() as cl:
        cl.settimeout(2)
        txid = bytes(range(12))
        cl.sendto(agents.stun_request(txid), srv.getsockname())
        resp, _ = cl.recvfrom(2048)
        mtype, length, cookie = struct.unpack_from(">HHI", resp)
        assert (mtype, cookie, resp[8:20]) == (0x0101, agents.STUN_COOKIE, txid) and length == len(resp) - 20
        attr, alen, _, fam, xport, xaddr = struct.unpack_from(">HHBBHI", resp, 20)
        assert (attr, alen, fam) == (0x0020, 8, 1)
        host, port = cl.getsockname()
        assert xport ^ (agents.STUN_COOKIE >> 16) == port
        assert str(ipaddress.ip_address(xaddr ^ agents.STUN_COOKIE)) == host


def test_media_server_streams_back_and_stops_after_silence(agents: ModuleType) -> None:
    srv = _udp()
    _server(agents._serve_media, srv, False, __import__("random").Random(2))
    rng = __import__("random").Random(3)
    with _udp() as cl:
        cl.settimeout(0.5)
        t0 = time.monotonic()
        for i in range(25):  # 0.5 s of audio
            cl.sendto(agents.rtp_packet(i, 160 * i, 7, 0, 160, rng), srv.getsockname())
            time.sleep(0.02)
        got = []
        with __import__("contextlib").suppress(OSError):
            while time.monotonic() - t0 < 4:
                got.append((time.monotonic(), cl.recv(4096)))
    assert len(got) > 40  # it kept sending after we stopped, for about 1.5 s
    sizes = {len(p) for _, p in got}
    assert sizes == {12 + 160} and all(p[0] == 0x80 and p[1] & 0x7F == 0 for _, p in got)
    assert got[-1][0] - t0 < 0.5 + 1.5 + 0.6  # and then stopped


def test_clients_and_servers_refuse_other_addresses() -> None:
    spec = importlib.util.spec_from_file_location("nta_lab_agents_plain", AGENTS_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for cmd, extra in ((mod.cmd_quic, {"port": 443, "objects": 1}), (mod.cmd_call, {"seconds": 1, "video": 0})):
        with pytest.raises(SystemExit, match="non-lab"):
            cmd(argparse.Namespace(host="192.0.2.7", seed=0, **extra))
    assert mod.lab_peer("::ffff:10.77.3.4") and mod.lab_peer("fd77::5") and mod.lab_peer("10.77.0.9")
    assert not mod.lab_peer("::ffff:192.0.2.1") and not mod.lab_peer("127.0.0.1") and not mod.lab_peer("2001:db8::1")
