"""The cluster's docker network: creating it, carving load-balancer address pools from it, and the
client container that plays "a machine outside the cluster" on it.

Pools are carved from the top of the network's IPv4 subnet, downward, because Docker hands out
container addresses from the bottom. A pool never contains the network address, the broadcast
address, the gateway, an address a container uses, or an address another svclab cluster's pool
holds; each cluster's pool is saved in its state folder so two clusters never overlap.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path

from .errors import SvclabError, UsageError

__all__ = ["Pool", "carve_pool", "load_pool", "pools_in_use", "save_pool", "taken_pools"]

MANAGED_LABEL = "svclab.io/managed"
CLUSTER_LABEL = "svclab.io/cluster"
NETWORK_ATTEMPTS = 5                # creating a network whose subnet another process took meanwhile
POOL_LABEL = "svclab.io/pool"      # on the client container: the pool, for clusters whose state lives elsewhere


@dataclasses.dataclass(frozen=True)
class Pool:
    """Addresses svclab owns on a docker network: one for the client container, the rest for
    load balancers."""

    network: str
    subnet: str
    client_ip: str
    first: str
    last: str

    @property
    def range(self) -> str:
        return f"{self.first}-{self.last}"

    def addresses(self) -> list[str]:
        start, end = int(ipaddress.IPv4Address(self.first)), int(ipaddress.IPv4Address(self.last))
        return [str(ipaddress.IPv4Address(i)) for i in range(start, end + 1)]

    def __contains__(self, ip: object) -> bool:
        try:
            value = int(ipaddress.IPv4Address(str(ip)))
        except ValueError:
            return False
        return int(ipaddress.IPv4Address(self.first)) <= value <= int(ipaddress.IPv4Address(self.last))

    def span(self) -> tuple[int, int]:
        return int(ipaddress.IPv4Address(self.client_ip)), int(ipaddress.IPv4Address(self.last))


def carve_pool(*, network: str, subnet: str, gateway: str | None, used: Iterable[str],
               taken: Iterable[Pool], size: int) -> Pool:
    """Returns the highest free block of SIZE + 1 addresses in SUBNET (the first for the client)."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise SvclabError(f"docker network {network} has an unusable subnet {subnet!r}") from None
    if net.version != 4:
        raise UsageError(f"docker network {network} has no IPv4 subnet ({subnet})",
                         hint="svclab needs an IPv4 subnet to carve load-balancer addresses from")
    blocked = {int(net.network_address), int(net.broadcast_address)}
    for ip in [gateway, *used]:
        if ip:
            blocked.add(int(ipaddress.ip_address(ip.split("/")[0])))
    spans = [p.span() for p in taken]
    need = size + 1
    end = int(net.broadcast_address) - 1
    low = int(net.network_address) + 1
    while end - need + 1 >= low:
        start = end - need + 1
        conflicts = [a for a in blocked if start <= a <= end]
        conflicts += [s for s, e in spans if s <= end and e >= start]
        if not conflicts:
            return Pool(network=network, subnet=str(net), client_ip=str(ipaddress.IPv4Address(start)),
                        first=str(ipaddress.IPv4Address(start + 1)), last=str(ipaddress.IPv4Address(end)))
        end = min(conflicts) - 1  # nothing from the lowest conflict upward can be used
    raise SvclabError(f"no free block of {need} addresses left in {network} ({net})",
                      hint="lower pool_size, or delete other svclab clusters on that network")


def save_pool(path: Path, pool: Pool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(dataclasses.asdict(pool), indent=2) + "\n")


def load_pool(path: Path) -> Pool | None:
    try:
        return Pool(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        raise SvclabError(f"{path} is damaged", hint="run `svclab cluster.down` and `cluster.up` again") from None


def taken_pools(state_dir: Path, network: str, *, except_cluster: str | None = None) -> list[Pool]:
    pools = []
    for path in sorted((state_dir / "clusters").glob("*/pool.json")):
        if path.parent.name == except_cluster:
            continue
        pool = load_pool(path)
        if pool and pool.network == network:
            pools.append(pool)
    return pools


def pools_in_use(dc, network: str, *, except_cluster: str) -> list[Pool]:
    """Pools of svclab clusters on NETWORK as their client containers carry them (clusters run
    with another state folder included)."""
    pools = []
    for container in dc.containers.list(all=True, filters={"label": POOL_LABEL}):
        labels = container.labels
        try:
            pool = Pool(**json.loads(labels[POOL_LABEL]))
        except (ValueError, TypeError):
            continue
        if pool.network == network and labels.get(CLUSTER_LABEL) != except_cluster:
            pools.append(pool)
    return pools


# ---------------------------------------------------------------- docker side

def docker_client():
    import docker
    from docker.errors import DockerException

    from .errors import PrerequisiteError

    try:
        dc = docker.from_env(timeout=60)
        dc.ping()
        return dc
    except DockerException as e:
        raise PrerequisiteError(f"Docker does not answer ({str(e).splitlines()[0][:120]})",
                                hint="start Docker (or check DOCKER_HOST and `docker context ls`); `svclab doctor` says more") from None


def ensure_network(dc, name: str) -> bool:
    """Creates the docker network NAME unless it exists; True when this call created it.

    The subnet must be written into the network's configuration (fixed container addresses need
    it), so Docker first picks a free one as usual and the network is then made again with it.
    """
    from docker.errors import APIError, NotFound
    from docker.types import IPAMConfig, IPAMPool

    try:
        existing = dc.networks.get(name)
    except NotFound:
        existing = None
    if existing is not None:
        if (existing.attrs.get("Labels") or {}).get(MANAGED_LABEL) != "true":
            raise UsageError(f"docker network {name} exists but svclab did not create it",
                             hint=f"svclab leaves it alone: set SVCLAB_NETWORK to another name, or remove it "
                                  f"(`docker network rm {name}`) if nothing uses it")
        return False
    labels = {MANAGED_LABEL: "true"}
    # Between the probe's removal and the second create, another process may make a network on
    # the subnet Docker picked: Docker then refuses the overlap, and a new probe picks another.
    attempt = 0
    while True:
        attempt += 1
        probe = dc.networks.create(name, driver="bridge", labels=labels)
        probe.reload()
        picked = next(c for c in probe.attrs["IPAM"]["Config"] if ":" not in c["Subnet"])
        probe.remove()
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=picked["Subnet"], gateway=picked.get("Gateway"))])
        try:
            made = dc.networks.create(name, driver="bridge", labels=labels, ipam=ipam,
                                      options={"com.docker.network.bridge.enable_ip_masquerade": "true"})
            return _one_of_that_name(dc, name, made.id)
        except APIError as e:
            if "overlap" not in str(e).lower() or attempt >= NETWORK_ATTEMPTS:
                raise


def _one_of_that_name(dc, name: str, made: str) -> bool:
    """Docker lets two processes create networks of the same name at once (two `cluster.up` on a
    machine without the network). Every process keeps the oldest of svclab's and removes the one
    it made if that is not it, so they all meet on one network. True when MADE is the one kept."""
    from docker.errors import APIError, NotFound

    same = [n for n in dc.api.networks(names=[name]) if n.get("Name") == name
            and (n.get("Labels") or {}).get(MANAGED_LABEL) == "true"]
    keep = min(same, key=lambda n: (n.get("Created", ""), n["Id"]))["Id"] if same else made
    if keep != made:
        try:
            dc.api.remove_network(made)
        except (APIError, NotFound):
            pass
    return keep == made


def network_facts(dc, name: str) -> tuple[str, str | None, list[str]]:
    """(IPv4 subnet, gateway, addresses in use) of the docker network NAME."""
    net = dc.networks.get(name)
    net.reload()
    attrs = net.attrs
    subnet = gateway = None
    for cfg in (attrs.get("IPAM") or {}).get("Config") or []:
        if ":" not in cfg.get("Subnet", ":"):
            subnet, gateway = cfg["Subnet"], cfg.get("Gateway")
            break
    if subnet is None:
        raise UsageError(f"docker network {name} has no IPv4 subnet",
                         hint=f"remove it (`docker network rm {name}`) and let svclab create it")
    used = [c.get("IPv4Address", "").split("/")[0] for c in (attrs.get("Containers") or {}).values()]
    return subnet, gateway, [u for u in used if u]


def remove_network_if_unused(dc, name: str) -> bool:
    from docker.errors import APIError, NotFound

    try:
        net = dc.networks.get(name)
        net.reload()
    except NotFound:
        return False
    if (net.attrs.get("Labels") or {}).get(MANAGED_LABEL) != "true" or net.attrs.get("Containers"):
        return False
    try:
        net.remove()
        return True
    except APIError:
        return False


def client_container_name(cluster: str) -> str:
    return f"svclab-client-{cluster}"


# The client's main process: drop the default route (so nothing it sends can leave the docker
# network), refuse to run if one is left, then idle. It serves nothing: svclab commands it over
# the Docker API (see outside.py).
DROP_DEFAULT_ROUTE = 'ip route del default 2>/dev/null; [ -z "$(ip route show default)" ] || exit 1'
CLIENT_COMMAND = f"{DROP_DEFAULT_ROUTE}; exec /agnhost pause"


def start_client(dc, *, cluster: str, image: str, pool: Pool | None = None, network_name: str | None = None) -> str:
    """Starts (or finds) the outside client: a container on the cluster's network at the pool's
    client address (or, on NETWORK_NAME without a pool, at an address Docker hands out), with no
    default route and no published port. Returns its name. A client made by an older svclab
    (which published agnhost netexec on a loopback port) is replaced."""
    from docker.errors import NotFound

    name = client_container_name(cluster)
    try:
        container = dc.containers.get(name)
        if container.status != "running" or container.attrs["HostConfig"].get("PortBindings"):
            container.remove(force=True)
            raise NotFound(name)
    except NotFound:
        if pool is not None:
            networking = dc.api.create_networking_config({
                pool.network: dc.api.create_endpoint_config(ipv4_address=pool.client_ip),
            })
        else:
            networking = dc.api.create_networking_config({network_name: dc.api.create_endpoint_config()})
        labels = {MANAGED_LABEL: "true", CLUSTER_LABEL: cluster}
        if pool is not None:
            labels[POOL_LABEL] = json.dumps(dataclasses.asdict(pool))
        created = dc.api.create_container(
            image, name=name, detach=True, labels=labels,
            entrypoint=["/bin/sh", "-c"], command=[CLIENT_COMMAND],
            host_config=dc.api.create_host_config(cap_add=["NET_ADMIN"]),  # to remove its default route
            networking_config=networking,
        )
        dc.api.start(created["Id"])
    return name


def client_address(dc, name: str, network_name: str) -> str:
    """The address of the container NAME on the docker network NETWORK_NAME."""
    container = dc.containers.get(name)
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network_name]["IPAddress"]


def remove_client(dc, cluster: str) -> bool:
    from docker.errors import NotFound

    try:
        container = dc.containers.get(client_container_name(cluster))
    except NotFound:
        return False
    if (container.labels or {}).get(CLUSTER_LABEL) != cluster:
        return False
    container.remove(force=True)
    return True
