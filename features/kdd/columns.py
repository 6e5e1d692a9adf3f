"""NSL-KDD's 41 feature columns: names, order and dtypes, shared by the NSL-KDD reader and the extractor.

Both produce polars frames with exactly ``KDD_SCHEMA``: the three categorical columns as strings,
every other feature as Float64 (NSL-KDD writes counts as integers and rates with two decimals).
"""

from __future__ import annotations

import polars as pl

KDD_FEATURES: tuple[str, ...] = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment",
    "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted",
    "num_root", "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds",
    "is_host_login", "is_guest_login", "count", "srv_count", "serror_rate", "srv_serror_rate",
    "rerror_rate", "srv_rerror_rate", "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate",
    "dst_host_count", "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip

CATEGORICAL: tuple[str, ...] = ("protocol_type", "service", "flag")
NUMERIC: tuple[str, ...] = tuple(c for c in KDD_FEATURES if c not in CATEGORICAL)

KDD_SCHEMA: dict[str, pl.DataType] = {c: (pl.String() if c in CATEGORICAL else pl.Float64()) for c in KDD_FEATURES}

CLASSES: tuple[str, ...] = ("normal", "DoS", "Probe", "R2L", "U2R")

# Attack name -> 5-class label (../shared/data/nsl-kdd/SOURCE.md; httptunnel U2R, worm R2L).
ATTACK_CLASS: dict[str, str] = {
    "normal": "normal",
    **dict.fromkeys(
        ["back", "land", "neptune", "pod", "smurf", "teardrop", "apache2", "mailbomb", "processtable", "udpstorm"],
        "DoS",
    ),
    **dict.fromkeys(["ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"], "Probe"),
    **dict.fromkeys(
        [
            "ftp_write",
            "guess_passwd",
            "imap",
            "multihop",
            "phf",
            "spy",
            "warezclient",
            "warezmaster",
            "named",
            "sendmail",
            "snmpgetattack",
            "snmpguess",
            "xlock",
            "xsnoop",
            "worm",
        ],
        "R2L",
    ),
    **dict.fromkeys(
        ["buffer_overflow", "loadmodule", "perl", "rootkit", "ps", "sqlattack", "xterm", "httptunnel"], "U2R"
    ),
}

# NSL-KDD's 11 flag values and 70 service tokens, in the ARFF header's order.
FLAGS: tuple[str, ...] = ("OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "S0", "S1", "S2", "S3", "SF", "SH")
SERVICES: tuple[str, ...] = (
    "aol", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime", "discard", "domain", "domain_u", "echo",
    "eco_i", "ecr_i", "efs", "exec", "finger", "ftp", "ftp_data", "gopher", "harvest", "hostnames", "http",
    "http_2784", "http_443", "http_8001", "imap4", "IRC", "iso_tsap", "klogin", "kshell", "ldap", "link",
    "login", "mtp", "name", "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp", "nntp", "ntp_u",
    "other", "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i", "remote_job", "rje", "shell",
    "smtp", "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet", "tftp_u", "tim_i", "time", "urh_i",
    "urp_i", "uucp", "uucp_path", "vmnet", "whois", "X11", "Z39_50",
)  # fmt: skip
PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "icmp")
