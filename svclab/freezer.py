"""Node containers Docker cannot remove because part of them is frozen.

On a cgroup v1 host, runc freezes a container's cgroup while it changes that container's device
rules. If the kind node is killed at that moment (a cluster deleted while its kubelet still starts
pods), the half-made container stays frozen: its process can never exit, the node's init waits
for it, and `docker rm --force` fails with "did not receive an exit event". Thawing the frozen
cgroups below that node container's own cgroup lets it die. Nothing outside it is touched.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STUCK_MESSAGE", "frozen_below", "thaw"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
STUCK_MESSAGE = "did not receive an exit event"   # Docker's words for a container that cannot die


# What a freeze file reads while a freeze is in effect. cgroup v1 says FREEZING until every task
# has stopped, which a task in an uninterruptible sleep can put off indefinitely.
_V1_FROZEN = ("FROZEN", "FREEZING")
_V2_FROZEN = ("1",)


def _container_cgroups(container_id: str, root: Path) -> list[tuple[Path, str, tuple[str, ...]]]:
    """(cgroup folder, freeze file, its frozen values) where Docker may have put the container."""
    return [
        (root / "freezer" / "docker" / container_id, "freezer.state", _V1_FROZEN),                    # v1, cgroupfs
        (root / "freezer" / "system.slice" / f"docker-{container_id}.scope", "freezer.state", _V1_FROZEN),  # v1, systemd
        (root / "docker" / container_id, "cgroup.freeze", _V2_FROZEN),                                 # v2, cgroupfs
        (root / "system.slice" / f"docker-{container_id}.scope", "cgroup.freeze", _V2_FROZEN),         # v2, systemd
    ]


def frozen_below(container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """The freeze files of frozen cgroups inside the container CONTAINER_ID's cgroup."""
    frozen = []
    for folder, name, values in _container_cgroups(container_id, root):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob(name)):
            try:
                if path.read_text().strip() in values:
                    frozen.append(path)
            except OSError:
                continue
    return frozen


def thaw(container_id: str, root: Path = CGROUP_ROOT) -> int:
    """Thaws every frozen cgroup inside the container's own; returns how many it thawed (0 when
    there were none, or when this process may not write to the cgroup file system)."""
    thawed = 0
    for path in frozen_below(container_id, root):
        try:
            path.write_text("THAWED" if path.name == "freezer.state" else "0")
            thawed += 1
        except OSError:
            continue
    return thawed
