"""Cuts a root file system tarball down to a few programs, the libraries they load and the files
they read.

kube-proxy and podnet start on every node of every new cluster, and containerd unpacks their
image there first: a full Debian root of ~5,000 files made that the slowest step of a node becoming
Ready. The programs they run (iptables, nft, conntrack, ipset) need a few hundred of those files.

Paths are followed through symlinks inside the tarball (Debian's merged /usr, the alternatives
system), and each ELF file's loader and DT_NEEDED libraries are added in turn; nothing is run.
"""

from __future__ import annotations

import copy
import posixpath
import struct
import tarfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["slim_rootfs", "needed_libraries", "run_paths"]

LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/lib", "/usr/lib64", "/lib64")
MAX_LINKS = 40   # symlinks followed per path before giving up (a loop)


def needed_libraries(data: bytes) -> tuple[str | None, list[str]]:
    """(interpreter path, DT_NEEDED names) of a 64-bit little-endian ELF file; (None, []) for
    anything else (scripts, data, static binaries without a dynamic section)."""
    interpreter, entries = _dynamic(data)
    return interpreter, [value for tag, value in entries if tag == 1]   # DT_NEEDED


def run_paths(data: bytes) -> list[str]:
    """The folders an ELF file's DT_RUNPATH (or older DT_RPATH) names, searched for its libraries
    before the usual ones; $ORIGIN is not expanded (Debian's packages use absolute paths)."""
    _, entries = _dynamic(data)
    return [d for tag, value in entries if tag in (15, 29) for d in value.split(":") if d]


def _dynamic(data: bytes) -> tuple[str | None, list[tuple[int, str]]]:
    """(PT_INTERP, the string entries of the dynamic section as (tag, value))."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None, []
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    interpreter = None
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 3:   # PT_INTERP
            interpreter = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    entries = []
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != 6:   # SHT_DYNAMIC
            continue
        strtab_offset = sections[link][4]
        for pos in range(offset, offset + size, entsize or 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            if tag in (1, 15, 29):   # DT_NEEDED, DT_RPATH, DT_RUNPATH
                end = data.index(b"\0", strtab_offset + value)
                entries.append((tag, data[strtab_offset + value:end].decode()))
    return interpreter, entries


class _Tree:
    """The tarball's members by normalised absolute path, and what has been kept so far."""

    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.members = {self.norm(m.name): m for m in tar.getmembers()}
        self.kept: dict[str, tarfile.TarInfo] = {}

    @staticmethod
    def norm(name: str) -> str:
        return posixpath.normpath("/" + name.lstrip("./"))

    def resolve(self, path: str) -> str | None:
        """Keeps every symlink met on the way to PATH; returns the real path (None if absent)."""
        parts = [p for p in self.norm(path).split("/") if p]
        current, links = "/", 0
        while parts:
            candidate = posixpath.join(current, parts.pop(0))
            member = self.members.get(candidate)
            if member is None:
                return None
            if member.issym():
                links += 1
                if links > MAX_LINKS:
                    raise ValueError(f"symlink loop at {candidate}")
                self.keep_member(candidate)
                target = member.linkname
                target = target if target.startswith("/") else posixpath.join(current, target)
                parts = [p for p in posixpath.normpath(target).split("/") if p] + parts
                current = "/"
                continue
            current = candidate
        return current

    def keep_member(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent != "/" and parent not in self.kept:
            if parent in self.members:
                self.kept[parent] = self.members[parent]
            parent = posixpath.dirname(parent)
        self.kept.setdefault(path, self.members[path])

    def keep(self, path: str) -> None:
        """Keeps PATH (a file with its libraries, or a directory with everything in it)."""
        real = self.resolve(path)
        if real is None:
            raise FileNotFoundError(f"{path} is not in the root file system")
        if real in self.kept and not self.members[real].isdir():
            return
        self.keep_member(real)
        member = self.members[real]
        if member.isdir():
            for name in [n for n in self.members if n.startswith(real + "/")]:
                self.keep(name)
        elif member.isfile() or member.islnk():
            data = self.tar.extractfile(member).read()
            interpreter, needed = needed_libraries(data)
            if interpreter:
                self.keep(interpreter)
            folders = (*run_paths(data), *LIBRARY_DIRS)
            for library in needed:
                found = next((p for p in (posixpath.join(d, library) for d in folders)
                              if self.resolve(p)), None)
                if found is None:
                    raise FileNotFoundError(f"{real} needs {library}, which is not in the root file system")
                self.keep(found)


def slim_rootfs(source: Path, dest: Path, keep: Iterable[str], *, optional: Iterable[str] = ()) -> int:
    """Writes to DEST the files of SOURCE that KEEP (and OPTIONAL, when present) need; returns
    how many entries it holds."""
    with tarfile.open(source) as tar:
        tree = _Tree(tar)
        for path in keep:
            tree.keep(path)
        for path in optional:
            if tree.resolve(path) is not None:
                tree.keep(path)
        partial = dest.with_suffix(".tmp")
        with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as out:
            for path in sorted(tree.kept):
                member = copy.copy(tree.kept[path])
                data = tar.extractfile(member) if member.isfile() or member.islnk() else None
                if member.islnk():   # the file's other name may not be kept: a plain copy instead
                    member.size = tar.getmember(member.linkname).size
                    member.type, member.linkname = tarfile.REGTYPE, ""
                member.name = "." + path
                out.addfile(member, data)
    partial.replace(dest)
    return len(tree.kept)
