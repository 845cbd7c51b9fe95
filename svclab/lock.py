"""One svclab command at a time per cluster, and what a command that was killed left behind.

Each cluster has a lock file beside the clusters' folders (``<state>/clusters/<name>.lock``). A
command that changes the cluster (`up`, `down`, a lab run) holds an exclusive ``flock`` on it
while it runs; a second command waits for it up to a deadline, saying whom it waits for, then
refuses in one line. The kernel drops the lock when its holder dies, however it dies.

While it holds the lock, the command writes what it is doing into the file (its pid, its task,
the lab namespaces it works in) and removes the file when it ends. A file with a record in it
when the lock is taken was therefore left by a command that did not end: `Unfinished` tells the
next one what to repair (see recovery.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .errors import SvclabError

__all__ = ["Unfinished", "lock_path", "holding", "cluster_held", "DEFAULT_WAIT"]

DEFAULT_WAIT = 120.0   # seconds a command waits for another one on the same cluster
POLL = 0.25


@dataclasses.dataclass(frozen=True)
class Unfinished:
    """What a command that was killed while holding the lock was doing."""

    pid: int
    task: str
    started: str
    namespaces: tuple[str, ...]


def lock_path(state_dir: Path, cluster: str) -> Path:
    return state_dir / "clusters" / f"{cluster}.lock"


def parse_record(text: str) -> Unfinished | None:
    """The record a holder wrote (None for an empty or unreadable file: nothing to repair)."""
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return Unfinished(pid=int(data.get("pid") or 0), task=str(data.get("task") or "?"),
                      started=str(data.get("started") or "?"),
                      namespaces=tuple(str(n) for n in data.get("namespaces") or ()))


def busy_message(cluster: str, holder: Unfinished | None) -> str:
    who = f"svclab (pid {holder.pid}) runs {holder.task}, since {holder.started}" if holder else "another svclab"
    return f"cluster {cluster} is busy: {who}"


@contextlib.contextmanager
def holding(state_dir: Path, cluster: str, task: str, *, namespaces: Sequence[str] = (),
            wait: float = DEFAULT_WAIT, on_wait: Callable[[str], None] | None = None,
            clock: Callable[[], float] = time.monotonic,
            pause: Callable[[float], None] = time.sleep) -> Iterator[Unfinished | None]:
    """Holds CLUSTER's lock for the block, for TASK working in NAMESPACES; yields what an earlier
    command left unfinished, or None. Waits up to WAIT seconds for another holder (ON_WAIT is
    told once whom it waits for), then raises SvclabError."""
    path = lock_path(state_dir, cluster)
    made, fd = _open(path)
    try:
        deadline, told = clock() + wait, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _still_the_file(fd, path):
                    break
                # The holder we waited for removed the file (its cluster is gone): take a new one.
                os.close(fd)
                made, fd = _open(path)
            except BlockingIOError:
                holder = parse_record(_read(fd))
                if clock() >= deadline:
                    raise SvclabError(busy_message(cluster, holder),
                                      hint=f"wait for it to end, or stop it; svclab waited {wait:.0f}s "
                                           "(SVCLAB_LOCK_WAIT sets how long)") from None
                if not told and on_wait:
                    on_wait(busy_message(cluster, holder) + f": waiting up to {wait:.0f}s")
                    told = True
                pause(POLL)
        unfinished = parse_record(_read(fd))
        _write(fd, json.dumps({"pid": os.getpid(), "task": task, "started": time.strftime("%H:%M:%S"),
                               "namespaces": list(namespaces)}))
        try:
            yield unfinished
        finally:
            # A command that ends leaves no file (and a command that made nothing, bad input or
            # Docker down, no folder either); a command waiting on the removed file sees that
            # once it gets the lock, and takes a new one. Only a killed holder's file stays.
            _write(fd, "")
            with contextlib.suppress(OSError):
                path.unlink()
                if not (path.parent / cluster).exists():
                    for folder in reversed(made):
                        folder.rmdir()
    finally:
        os.close(fd)   # closing drops the flock


def _open(path: Path) -> tuple[list[Path], int]:
    """The folders made for the lock file PATH (outermost first) and its descriptor."""
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()][::-1]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return made, os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _still_the_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode())
    os.fsync(fd)


@contextlib.contextmanager
def cluster_held(settings, task: str, ui, *, namespaces: Sequence[str] = (),
                 repair: bool = True) -> Iterator[Unfinished | None]:
    """`holding` for SETTINGS' cluster, waiting settings.lock_wait seconds and saying so on UI.
    With REPAIR, what an unfinished earlier command left is repaired first, and said so: its
    cluster's nodes (through Docker: a frozen control plane answers nothing), then the lab
    namespaces it worked in, deleted so that the labs apply them afresh. (`down`, which deletes
    the cluster whatever state it is in, has nothing to repair.)"""
    with holding(settings.state_dir, settings.cluster_name, task, namespaces=namespaces,
                 wait=settings.lock_wait, on_wait=ui.step) as unfinished:
        if unfinished is not None and repair:
            from .recovery import repair

            ui.warn(f"an earlier svclab (pid {unfinished.pid}, {unfinished.task}) stopped before it ended: "
                    "repairing what it left")
            for line in repair(settings, unfinished.namespaces):
                ui.step(line)
        yield unfinished
