"""Machines svclab runs beside the cluster, on its docker network, the way a site runs them beside
its nodes: the external load balancers (HAProxy), the DNS server of the round-robin lab, and the
BGP lab's router with the second network behind it (probes/edge.py).

The lab that needs one makes it (`ensure`, `ensure_network`); a machine whose configuration changed
is replaced, one whose configuration is the same is kept. `cluster.down` removes them all
(`remove_all`). Each is a container named ``svclab-ROLE-CLUSTER`` with svclab's labels and its
files copied in before it starts; none publishes a port. None is configured to reach anything but
lab addresses: HAProxy's servers are the nodes' addresses, the DNS server answers for svclab's own
zone and forwards nothing, and the router takes sessions from the cluster's network only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile

from . import config
from .errors import PrerequisiteError, SvclabError
from .network import CLUSTER_LABEL, DROP_DEFAULT_ROUTE, MANAGED_LABEL

__all__ = ["Machine", "confined", "container_name", "ensure", "ensure_network", "remove_all", "ROLE_LABEL"]

ROLE_LABEL = "svclab.io/role"
CONFIG_LABEL = "svclab.io/config"   # a digest of what the machine was started with


@dataclasses.dataclass(frozen=True)
class Machine:
    """What one machine runs: its image, its command line and the files it reads."""

    role: str                        # a DNS label: names the container
    image: str
    argv: tuple[str, ...]            # entrypoint and arguments
    files: tuple[tuple[str, str], ...] = ()   # (absolute path, text)
    user: str | None = None
    cap_add: tuple[str, ...] = ()
    keep_default_caps: bool = False            # a router's daemons change user and need Docker's default set
    sysctls: tuple[tuple[str, str], ...] = ()
    also_on: tuple[str, ...] = ()              # more docker networks it is attached to
    hostname: str | None = None                # what it calls itself (an echo server's answer)

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def container_name(role: str, cluster: str) -> str:
    return f"svclab-{role}-{cluster}"


def _archive(files: tuple[tuple[str, str], ...]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        # Top-level folders (/etc, /run) are not written: Docker would give them this archive's mode.
        made: set[str] = set()
        for path, text in files:
            parts = path.strip("/").split("/")
            for depth in range(2, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    made.add(folder)
            data = text.encode()
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _image(dc, image: str) -> None:
    from docker.errors import APIError, ImageNotFound

    try:
        dc.images.get(image)
    except ImageNotFound:
        try:
            dc.images.pull(image)
        except APIError as e:
            raise PrerequisiteError(f"image {image} is not in local Docker and cannot be pulled "
                                    f"({str(e.explanation or e)[:120]})",
                                    hint="pull it where a registry is reachable, or build the test bed") from None


def ensure(dc, *, cluster: str, network: str, machine: Machine) -> str:
    """Starts MACHINE for CLUSTER on NETWORK unless it already runs as asked; returns its address."""
    from docker.errors import NotFound

    name = container_name(machine.role, cluster)
    digest = hashlib.sha256(f"{machine.digest()} {network}".encode()).hexdigest()[:16]
    try:
        container = dc.containers.get(name)
    except NotFound:
        container = None
    if container is not None:
        labels = container.labels or {}
        if labels.get(CLUSTER_LABEL) != cluster or labels.get(ROLE_LABEL) != machine.role:
            raise SvclabError(f"container {name} exists but svclab did not make it for cluster {cluster}",
                              hint=f"svclab leaves it alone: remove it (`docker rm -f {name}`) if nothing needs it")
        if labels.get(CONFIG_LABEL) == digest and container.status == "running":
            return _address(container, network)
        container.remove(force=True)
    _image(dc, machine.image)
    container = dc.containers.create(
        machine.image, name=name, entrypoint=list(machine.argv[:1]), command=list(machine.argv[1:]),
        labels={MANAGED_LABEL: "true", CLUSTER_LABEL: cluster, ROLE_LABEL: machine.role, CONFIG_LABEL: digest},
        network=network, user=machine.user, cap_add=list(machine.cap_add) or None, hostname=machine.hostname,
        cap_drop=None if machine.keep_default_caps else ["ALL"], sysctls=dict(machine.sysctls) or None,
        detach=True,
    )
    try:
        for other in machine.also_on:
            dc.networks.get(other).connect(container)
        if machine.files:
            container.put_archive("/", _archive(machine.files))
        container.start()
        container.reload()
        if container.status != "running":
            log = container.logs(tail=5).decode(errors="replace").strip()
            raise SvclabError(f"{machine.role} container {name} stopped at once: {log[-300:]}")
    except BaseException:
        container.remove(force=True)
        raise
    return _address(container, network)


def _address(container, network: str) -> str:
    ip = ((container.attrs["NetworkSettings"]["Networks"].get(network) or {}).get("IPAddress")) or ""
    if not ip:
        raise SvclabError(f"container {container.name} has no address on docker network {network}")
    return ip


def ensure_network(dc, *, cluster: str, role: str) -> str:
    """A docker network of svclab's own for CLUSTER (named like a machine, labelled the same);
    returns its IPv4 subnet."""
    from docker.errors import NotFound

    name = container_name(role, cluster)
    try:
        net = dc.networks.get(name)
    except NotFound:
        net = dc.networks.create(name, driver="bridge", labels={MANAGED_LABEL: "true", CLUSTER_LABEL: cluster,
                                                               ROLE_LABEL: role})
    if (net.attrs.get("Labels") or {}).get(CLUSTER_LABEL) != cluster:
        raise SvclabError(f"docker network {name} exists but svclab did not make it for cluster {cluster}",
                          hint=f"svclab leaves it alone: remove it (`docker network rm {name}`) if nothing uses it")
    net.reload()
    for ipam in (net.attrs.get("IPAM") or {}).get("Config") or []:
        if ":" not in ipam.get("Subnet", ":"):
            return ipam["Subnet"]
    raise SvclabError(f"docker network {name} has no IPv4 subnet")


def remove_all(dc, cluster: str) -> int:
    """Removes every machine and network svclab made for CLUSTER beside it; returns how many."""
    removed = 0
    mine = {"label": [f"{CLUSTER_LABEL}={cluster}", ROLE_LABEL]}
    for container in dc.containers.list(all=True, filters=mine):
        container.remove(force=True)
        removed += 1
    for net in dc.networks.list(filters=mine):
        net.reload()
        for attached in (net.attrs.get("Containers") or {}):
            net.disconnect(attached, force=True)
        net.remove()
        removed += 1
    return removed


def confined(role: str, command: str, *, hostname: str | None = None) -> Machine:
    """A machine of the agnhost image that first drops its default route, so it can reach nothing
    beyond the docker network (it refuses to run if one is left), then runs COMMAND (an agnhost
    subcommand line: `pause` for a client svclab commands, `netexec ...` for an echo server)."""
    return Machine(role=role, image=config.agnhost_image(), hostname=hostname, cap_add=("NET_ADMIN",),
                   argv=("/bin/sh", "-c", f"{DROP_DEFAULT_ROUTE}; exec /agnhost {command}"))


def haproxy_image() -> str:
    return config.pins()["haproxy"]["image"]


def dns_image() -> str:
    return config.pins()["dns_server"]["image"]


def frr_image() -> str:
    return config.pins()["frr"]["image"]
