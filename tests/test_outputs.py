"""Where ``-o`` may write: only regular files are replaced; symbolic links are followed (the link stays).

Device nodes are made with mknod in the test's own folder (never the machine's /dev/null); tests that need
a privilege this machine does not give skip and say so.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from analyzer.cli import app
from features.common import InputError, atomic_path, output_file

DEMO = Path(__file__).resolve().parent.parent / "sample_pcaps" / "land.pcap"


def _run(cmd: str, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(app, [cmd, str(DEMO), "-o", str(out), "-q", *extra])


def _one_line(res: Result, *words: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nta: error: "), res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def _null_device(folder: Path) -> Path:
    dev = folder / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD, which this machine does not give")
    return dev


@pytest.mark.parametrize("cmd", ["flows", "features"])
def test_a_device_node_is_never_replaced_even_with_force(tmp_path: Path, cmd: str) -> None:
    dev = _null_device(tmp_path)
    _one_line(_run(cmd, dev, "--force"), str(dev), "is a character device")
    assert stat.S_ISCHR(dev.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temporary file either


@pytest.mark.parametrize("cmd", ["flows", "features"])
def test_dash_is_refused_not_written_as_a_file_called_dash(
    tmp_path: Path, cmd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-o -`` reads as standard output (``nta scan --out -``): a file called ``-`` in the working folder is refused,
    a path to one is not."""
    monkeypatch.chdir(tmp_path)
    _one_line(_run(cmd, Path("-")), "-: -o - (standard output) is not possible here", "name a file")
    assert list(tmp_path.iterdir()) == []
    assert _run(cmd, tmp_path / "-").exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["-"]


def test_a_fifo_and_a_socket_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "out.parquet"
    os.mkfifo(fifo)
    _one_line(_run("flows", fifo, "--force"), "is a named pipe")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    sock_path = tmp_path / "s.parquet"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        _one_line(_run("flows", sock_path, "--force"), "is a socket")
    with pytest.raises(InputError, match="is a named pipe"), atomic_path(fifo) as tmp:  # every writer, not only -o
        tmp.write_text("x")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and not list(tmp_path.glob(".*.tmp"))


def test_a_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "data" / "flows.parquet"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "latest.parquet"
    link.symlink_to(real)
    _one_line(_run("flows", link), "exists; use --force")
    assert real.read_bytes() == b"old"
    res = _run("flows", link, "--force")
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes()[:4] == b"PAR1"  # the file the link names was replaced


def test_a_dangling_symlink_creates_its_file_and_a_loop_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "k.parquet"
    link.symlink_to(tmp_path / "made.parquet")
    res = _run("features", link)
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and (tmp_path / "made.parquet").read_bytes()[:4] == b"PAR1"
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    a.symlink_to(b)
    b.symlink_to(a)
    _one_line(_run("flows", a, "--force"), "symbolic link that cannot be followed")
    assert a.is_symlink() and b.is_symlink()


def test_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    dev = _null_device(tmp_path)
    link = tmp_path / "out.parquet"
    link.symlink_to(dev)
    _one_line(_run("flows", link, "--force"), "is a character device")
    assert link.is_symlink() and stat.S_ISCHR(dev.lstat().st_mode)


def test_output_file_rules(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    assert output_file(f, force=False) == f
    f.write_text("1")
    with pytest.raises(InputError, match="exists; use --force"):
        output_file(f, force=False)
    assert output_file(f, force=True) == f
    with pytest.raises(InputError, match="is a folder; -o names the output file"):
        output_file(tmp_path)
