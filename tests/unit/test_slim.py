"""The test bed's root-fs trimmer (scripts/testbed/slim.py), on small tarballs made here."""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "testbed"))
from slim import needed_libraries, slim_rootfs  # noqa: E402


def _tar(path: Path, entries: list[tuple[str, str, str | bytes]]) -> Path:
    """ENTRIES: (kind, name, content or link target), kind one of dir, file, sym, hard."""
    with tarfile.open(path, "w") as tar:
        for kind, name, value in entries:
            info = tarfile.TarInfo("./" + name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "file":
                data = value.encode() if isinstance(value, str) else value
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = value
                tar.addfile(info)
    return path


def _names(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name.lstrip("."): m for m in tar.getmembers()}


def test_symlink_chains_and_their_folders_are_kept(tmp_path):
    source = _tar(tmp_path / "in.tar", [
        ("dir", "usr", ""), ("dir", "usr/sbin", ""), ("dir", "etc", ""), ("dir", "etc/alternatives", ""),
        ("sym", "sbin", "usr/sbin"),
        ("file", "usr/sbin/xtables-nft-multi", "#!/bin/true\n"),
        ("sym", "usr/sbin/iptables-nft", "xtables-nft-multi"),
        ("sym", "etc/alternatives/iptables", "/usr/sbin/iptables-nft"),
        ("sym", "usr/sbin/iptables", "/etc/alternatives/iptables"),
        ("file", "usr/sbin/unrelated", "no"),
        ("file", "etc/protocols", "tcp 6 TCP\n"),
    ])
    count = slim_rootfs(source, tmp_path / "out.tar", ["/sbin/iptables", "/etc/protocols"])
    kept = _names(tmp_path / "out.tar")
    assert count == len(kept)
    assert {"/sbin", "/usr/sbin/iptables", "/etc/alternatives/iptables", "/usr/sbin/iptables-nft",
            "/usr/sbin/xtables-nft-multi", "/etc/protocols", "/usr/sbin", "/etc/alternatives"} <= set(kept)
    assert "/usr/sbin/unrelated" not in kept
    assert kept["/sbin"].issym() and kept["/sbin"].linkname == "usr/sbin"


def test_a_hard_link_becomes_a_plain_copy(tmp_path):
    source = _tar(tmp_path / "in.tar", [
        ("dir", "usr", ""), ("dir", "usr/bin", ""),
        ("file", "usr/bin/gunzip", "unzip me"), ("hard", "usr/bin/uncompress", "./usr/bin/gunzip"),
    ])
    slim_rootfs(source, tmp_path / "out.tar", ["/usr/bin/uncompress"])
    with tarfile.open(tmp_path / "out.tar") as tar:
        member = tar.getmember("./usr/bin/uncompress")
        assert member.isfile()
        assert tar.extractfile(member).read() == b"unzip me"
        assert "./usr/bin/gunzip" not in tar.getnames()


def test_missing_paths_and_symlink_loops_are_errors(tmp_path):
    source = _tar(tmp_path / "in.tar", [("sym", "a", "b"), ("sym", "b", "a")])
    with pytest.raises(FileNotFoundError, match="/nothing"):
        slim_rootfs(source, tmp_path / "out.tar", ["/nothing"])
    with pytest.raises(ValueError, match="loop"):
        slim_rootfs(source, tmp_path / "out.tar", ["/a"])
    assert slim_rootfs(source, tmp_path / "out.tar", [], optional=["/nothing"]) == 0


def test_elf_loader_and_needed_libraries_are_read():
    true = Path(shutil.which("true") or "/bin/true").resolve()
    interpreter, needed = needed_libraries(true.read_bytes())
    assert interpreter and "ld-linux" in interpreter
    assert "libc.so.6" in needed
    assert needed_libraries(b"#!/bin/sh\necho hi\n") == (None, [])
