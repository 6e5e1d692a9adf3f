"""NSL-KDD ``service`` from a flow's protocol and responder port (or ICMP type/code): one table, 70 tokens.

Every value produced is one of ``features.kdd.columns.SERVICES``; the mapping is one table in code
(``TCP_PORTS``, ``UDP_PORTS``, ``ICMP_TYPES``) plus three rules:

1. **TCP** ``ftp_data`` when either port is 20 (active-mode FTP data: the server connects *from* port
   20, so 20 is our originator port). Otherwise the responder port's token from ``TCP_PORTS``
   (the 1990s ``/etc/services`` name the token spells, with a few aliases for the same protocol:
   8080/8008 http, 993 imap4, 636 ldap, 563 nntp, 6000-6063 X11, 6665-6669 IRC, 5190-5193 aol).
2. **UDP** ``domain_u`` (53), ``tftp_u`` (69), ``ntp_u`` (123): the only named UDP tokens NSL-KDD has.
3. **Unnamed ports**: ``private`` when the responder port is below 1024 (or absent, as for a
   non-first IP fragment, whose port reads as 0), ``other`` from 1024 up. This is *not* the
   "≥ 49152 is private" rule of AI-IDS and gureKDD; it is what the NSL-KDD rows show
   (tests/kdd/test_services.py recomputes each point from KDDTrain+):

   * nmap's rows (an nmap of 1998 scans ports 1-1024 by default) are TCP ``private`` 290 times and
     ``other`` never, and every named token nmap hit is a port below 1024: the unnamed ports it
     hit are low ports, and they are ``private``.
   * neptune (a SYN flood over low ports): 17,971 ``private`` vs 58 ``other``; all 53 named
     tokens it hit are below 1024 too.
   * satan (which also scans high ports: it hit X11) splits ``private``/``other`` about evenly.
   * normal TCP traffic is ``other`` 353 times and ``private`` 4 times: benign connections go to
     high unnamed ports (e.g. FTP data to a client port) far more than to unnamed low ports.
   * teardrop rows are all UDP ``private``: its fragments carry no port past the first (port 0).

   Per protocol in KDDTrain+: TCP private 18,562 (4 normal), TCP other 1,871 (353 normal),
   UDP private 3,291 (978 normal), UDP other 2,488 (2,251 normal); ICMP never uses either.

**ICMP / ICMPv6** from the type (and code): echo request ``eco_i`` (v4 8, v6 128), echo reply
``ecr_i`` (0, 129), time exceeded ``tim_i`` (11, v6 3), redirect ``red_i`` (5, v6 137),
destination unreachable: port unreachable ``urp_i`` (3/3, v6 1/4), every other unreachable code
``urh_i`` (host/net/admin...). NSL-KDD has no ICMP token beyond these six; informational requests
(timestamp 13, information 15, address mask 17, router solicitation 10, v6 neighbour solicitation
135, router solicitation 133) map to ``eco_i`` and their replies (14, 16, 18, 9, v6 136, 134) to
``ecr_i``, other error types (source quench 4, parameter problem 12, v6 packet too big 2 and
parameter problem 4) to ``urh_i``; anything else to ``other``.

**Zeek conn logs** (``features.zeeklog``) also carry ``service``: the protocols Zeek's analyzers confirmed
(``http``, ``ssl``, ``dns``, ... comma-joined). The port rules above still decide, so a log and its capture agree;
only where they say ``private`` or ``other`` (a port that names nothing) does the first protocol Zeek confirmed
that has an NSL-KDD token (``ZEEK_SERVICES``) name it: ``http`` on port 8888 is ``http``, not ``other``.

Tokens with no port (never produced): ``harvest``, ``pm_dump`` (their port is undocumented;
KDDTrain+ has 2 and 5 rows). Other IP protocols (GRE, ESP, ...) get ``other``.
"""

from __future__ import annotations

import polars as pl

from features.kdd.columns import SERVICES

PRIVATE_BELOW = 1024  # unnamed responder ports below this are ``private``, from it up ``other``

TCP_PORTS: dict[int, str] = {
    5: "rje", 7: "echo", 9: "discard", 11: "systat", 13: "daytime", 15: "netstat", 20: "ftp_data",
    21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 37: "time", 42: "name", 43: "whois", 53: "domain",
    57: "mtp", 70: "gopher", 71: "remote_job", 72: "remote_job", 73: "remote_job", 74: "remote_job",
    77: "rje", 79: "finger", 80: "http", 84: "ctf", 95: "supdup", 101: "hostnames", 102: "iso_tsap",
    105: "csnet_ns", 109: "pop_2", 110: "pop_3", 111: "sunrpc", 113: "auth", 117: "uucp_path",
    119: "nntp", 137: "netbios_ns", 138: "netbios_dgm", 139: "netbios_ssn", 143: "imap4", 150: "sql_net",
    66: "sql_net", 165: "courier", 175: "vmnet", 179: "bgp", 194: "IRC", 210: "Z39_50", 245: "link",
    389: "ldap", 433: "nnsp", 443: "http_443", 512: "exec", 513: "login", 514: "shell", 515: "printer",
    520: "efs", 530: "courier", 531: "aol", 540: "uucp", 543: "klogin", 544: "kshell", 563: "nntp",
    636: "ldap", 993: "imap4", 2784: "http_2784", 5190: "aol", 5191: "aol", 5192: "aol", 5193: "aol",
    6665: "IRC", 6666: "IRC", 6667: "IRC", 6668: "IRC", 6669: "IRC", 8001: "http_8001", 8008: "http",
    8080: "http",
    **dict.fromkeys(range(6000, 6064), "X11"),
}  # fmt: skip

UDP_PORTS: dict[int, str] = {53: "domain_u", 69: "tftp_u", 123: "ntp_u"}

# (ip_proto, icmp type) -> token; (ip_proto, type, code) overrides for destination unreachable.
ICMP_TYPES: dict[tuple[int, int], str] = {
    (1, 0): "ecr_i", (1, 8): "eco_i", (1, 11): "tim_i", (1, 5): "red_i", (1, 3): "urh_i",
    (1, 13): "eco_i", (1, 15): "eco_i", (1, 17): "eco_i", (1, 10): "eco_i",
    (1, 14): "ecr_i", (1, 16): "ecr_i", (1, 18): "ecr_i", (1, 9): "ecr_i",
    (1, 4): "urh_i", (1, 12): "urh_i",
    (58, 128): "eco_i", (58, 129): "ecr_i", (58, 3): "tim_i", (58, 137): "red_i", (58, 1): "urh_i",
    (58, 133): "eco_i", (58, 135): "eco_i", (58, 134): "ecr_i", (58, 136): "ecr_i",
    (58, 2): "urh_i", (58, 4): "urh_i",
}  # fmt: skip
ICMP_PORT_UNREACHABLE: frozenset[tuple[int, int, int]] = frozenset({(1, 3, 3), (58, 1, 4)})

# Zeek's service names -> (TCP token, UDP token); None where NSL-KDD has no token for that transport.
ZEEK_SERVICES: dict[str, tuple[str | None, str | None]] = {
    "http": ("http", None), "ssl": ("http_443", None), "ssh": ("ssh", None), "ftp": ("ftp", None),
    "ftp-data": ("ftp_data", None), "smtp": ("smtp", None), "dns": ("domain", "domain_u"), "pop3": ("pop_3", None),
    "imap": ("imap4", None), "irc": ("IRC", None), "ntp": (None, "ntp_u"), "finger": ("finger", None),
    "ident": ("auth", None), "ldap": ("ldap", None), "ldap_tcp": ("ldap", None), "telnet": ("telnet", None),
    "rlogin": ("login", None), "rsh": ("shell", None), "portmapper": ("sunrpc", None),
}  # fmt: skip

assert set(TCP_PORTS.values()) | set(UDP_PORTS.values()) | set(ICMP_TYPES.values()) <= set(SERVICES)


def service_expr(hint: str | None = None) -> pl.Expr:
    """A polars expression giving ``service`` from FLOW_SCHEMA columns (ip_proto, orig_p, resp_p, icmp_*).

    ``hint``: a column of Zeek's ``service`` text, which names the service where the port does not (see above).
    Vectorised: dictionary lookups via ``replace_strict``, no Python per row.
    """
    ip_proto = pl.col("ip_proto").cast(pl.Int64)
    resp_p = pl.col("resp_p").cast(pl.Int64).fill_null(0)
    orig_p = pl.col("orig_p").cast(pl.Int64).fill_null(-1)
    unnamed = pl.when(resp_p < PRIVATE_BELOW).then(pl.lit("private")).otherwise(pl.lit("other"))
    tcp = (
        pl.when((orig_p == 20) | (resp_p == 20))
        .then(pl.lit("ftp_data"))
        .otherwise(resp_p.replace_strict(TCP_PORTS, default=None, return_dtype=pl.String))
    )
    udp = resp_p.replace_strict(UDP_PORTS, default=None, return_dtype=pl.String)
    itype = pl.col("icmp_type").cast(pl.Int64).fill_null(-1)
    icode = pl.col("icmp_code").cast(pl.Int64).fill_null(-1)
    type_key = ip_proto * 1000 + itype  # one integer per (proto, type), for a flat lookup
    icmp = (
        pl.when(pl.any_horizontal([(ip_proto == p) & (itype == t) & (icode == c) for p, t, c in ICMP_PORT_UNREACHABLE]))
        .then(pl.lit("urp_i"))
        .otherwise(
            type_key.replace_strict(
                {p * 1000 + t: s for (p, t), s in ICMP_TYPES.items()}, default="other", return_dtype=pl.String
            )
        )
    )
    if hint is not None:
        names = pl.col(hint).str.to_lowercase().str.split(",")
        for i, transport in ((0, "tcp"), (1, "udp")):
            table = {k: v[i] for k, v in ZEEK_SERVICES.items() if v[i] is not None}
            zeek = names.list.eval(pl.element().replace_strict(table, default=None, return_dtype=pl.String))
            named = zeek.list.drop_nulls().list.first()
            if transport == "tcp":
                unnamed_tcp = named.fill_null(unnamed)
            else:
                unnamed_udp = named.fill_null(unnamed)
    else:
        unnamed_tcp = unnamed_udp = unnamed
    return (
        pl.when(ip_proto == 6)
        .then(tcp.fill_null(unnamed_tcp))
        .when(ip_proto == 17)
        .then(udp.fill_null(unnamed_udp))
        .when(ip_proto.is_in([1, 58]))
        .then(icmp)
        .otherwise(pl.lit("other"))
        .alias("service")
    )
