"""The edge of the bgp lab: a router beside the cluster that MetalLB's speakers peer with, and a
network behind it where the outside client sits, so that its traffic to a BGP address follows the
router's routes.

    outside client ── svclab-edge-CLUSTER ── router ── cluster network ── nodes (MetalLB speakers)
      (route to the BGP pool via the router)   AS 64500                     AS 64501, one session each

Made once per cluster by the first probe that needs it (`ensure_edge`), all of it svclab's own:

- the docker network ``svclab-edge-CLUSTER``;
- the router ``svclab-router-CLUSTER``: FRR's zebra and bgpd on both networks, accepting a session
  from any address of the cluster network, installing up to 16 equal-cost paths, and hashing flows
  on their ports as well (``fib_multipath_hash_policy=1``), so one client's connections spread;
- the outside client attached to the edge network, with a route to the BGP pool via the router
  (and still no default route);
- on every node, a route back to the edge network via the router;
- MetalLB: the pool ``svclab-bgp`` (8 addresses near the top of the edge network, given only to a
  Service that asks for it by annotation), a BGPAdvertisement of it and a BGPPeer for the router
  with a 6-second hold time.

The router is asked through ``vtysh`` (FRR's shell) over docker exec: its own view, read-only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import threading
from typing import Any

from ..errors import SvclabError
from ..kube import api_error_message
from .outage import node_container
from .traffic import outside_run

__all__ = ["BGP_POOL", "Edge", "ensure_edge", "router_json", "frr_bgpd_config"]

ROUTER_ASN, NODE_ASN = 64500, 64501
BGP_POOL = "svclab-bgp"
POOL_SIZE = 8
HOLD_SECONDS, KEEPALIVE_SECONDS = 6, 2
_setup = threading.Lock()   # the probes of one batch run side by side; the edge is made once


@dataclasses.dataclass(frozen=True)
class Edge:
    subnet: str            # the edge network, client side
    pool: str              # the BGP pool, a block near the top of SUBNET
    router_ip: str         # on the cluster network: the nodes' BGP peer and next hop back
    router_edge_ip: str    # on the edge network: the client's way to the pool
    client_ip: str         # the outside client's address on the edge network
    router: str            # the router's container name


def frr_bgpd_config(cluster_subnet: str) -> str:
    """bgpd's configuration: AS 64500, sessions accepted from any address of CLUSTER_SUBNET as
    AS 64501, routes taken without a policy, up to 16 paths per prefix."""
    return "\n".join([
        "frr defaults traditional",
        "hostname svclab-router",
        "log stdout informational",
        f"router bgp {ROUTER_ASN}",
        " no bgp ebgp-requires-policy",
        " neighbor nodes peer-group",
        f" neighbor nodes remote-as {NODE_ASN}",
        f" neighbor nodes timers {KEEPALIVE_SECONDS} {HOLD_SECONDS}",
        f" bgp listen range {cluster_subnet} peer-group nodes",
        " address-family ipv4 unicast",
        "  maximum-paths 16",
        " exit-address-family",
        "",
    ])


def pool_block(subnet: str) -> str:
    """The block of POOL_SIZE addresses just below the top one of SUBNET (the top block holds the
    broadcast address; Docker hands out container addresses from the bottom), as a CIDR block."""
    net = ipaddress.ip_network(subnet)
    if net.num_addresses < 4 * POOL_SIZE:
        raise SvclabError(f"docker network {subnet} is too small for a BGP pool of {POOL_SIZE} addresses")
    start = int(net.broadcast_address) + 1 - 2 * POOL_SIZE
    return f"{ipaddress.IPv4Address(start)}/{32 - (POOL_SIZE.bit_length() - 1)}"


START = ("mkdir -p /run/frr /var/tmp/frr && chown frr:frr /run/frr /var/tmp/frr"
         " && /usr/lib/frr/zebra -d -F traditional -f /etc/frr/zebra.conf"
         " && exec /usr/lib/frr/bgpd -F traditional -f /etc/frr/bgpd.conf")


def metallb_objects(pool: str, router_ip: str) -> list[dict[str, Any]]:
    from ..providers.metallb import NAMESPACE

    meta = {"name": BGP_POOL, "namespace": NAMESPACE}
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": dict(meta),
         "spec": {"addresses": [pool], "autoAssign": False}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": dict(meta),
         "spec": {"ipAddressPools": [BGP_POOL]}},
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {**meta, "name": "svclab-router"},
         # Native mode takes no keepalive time of its own: a third of the hold time.
         "spec": {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": router_ip,
                  "holdTime": f"{HOLD_SECONDS}s"}},
    ]


def _address_on(container, network: str) -> str:
    container.reload()
    ip = (container.attrs["NetworkSettings"]["Networks"].get(network) or {}).get("IPAddress")
    if not ip:
        raise SvclabError(f"container {container.name} has no address on docker network {network}")
    return ip


def ensure_edge(ctx, *, speakers: bool) -> Edge:
    """The edge (see the module's docstring), made or checked; SPEAKERS: configure MetalLB to peer."""
    from .. import site
    from ..network import docker_client

    with _setup:
        dc, cluster, network = docker_client(), ctx.settings.cluster_name, ctx.settings.network
        subnet = site.ensure_network(dc, cluster=cluster, role="edge")
        edge_net = site.container_name("edge", cluster)
        pool = pool_block(subnet)
        machine = site.Machine(
            role="router", image=site.frr_image(), argv=("/bin/sh", "-c", START),
            files=(("/etc/frr/zebra.conf", "hostname svclab-router\nlog stdout informational\n"),
                   ("/etc/frr/bgpd.conf", frr_bgpd_config(ctx.topology.pool.subnet)),
                   ("/etc/frr/vtysh.conf", "username root nopassword\n")),
            keep_default_caps=True, cap_add=("NET_ADMIN", "SYS_ADMIN"),
            sysctls=(("net.ipv4.ip_forward", "1"), ("net.ipv4.fib_multipath_hash_policy", "1")),
            also_on=(edge_net,))
        router_ip = site.ensure(dc, cluster=cluster, network=network, machine=machine)
        router = dc.containers.get(site.container_name("router", cluster))
        router_edge_ip = _address_on(router, edge_net)
        client = dc.containers.get(ctx.outside.container)
        if edge_net not in client.attrs["NetworkSettings"]["Networks"]:
            dc.networks.get(edge_net).connect(client)
        client_ip = _address_on(client, edge_net)
        # Connecting a network may give the client a default route again: it must have none.
        code, out = outside_run(ctx, f"ip route del default 2>/dev/null; [ -z \"$(ip route show default)\" ] && "
                                     f"ip route replace {pool} via {router_edge_ip}", timeout=5)
        if code != 0:
            raise SvclabError(f"could not route the BGP pool through the router in the outside client: {out.strip()[:200]}")
        for node in ctx.topology.nodes:
            result = node_container(ctx, node.name).exec_run(["ip", "route", "replace", subnet, "via", router_ip])
            if result.exit_code != 0:
                raise SvclabError(f"could not route {subnet} via the router on {node.name}: "
                                  f"{result.output.decode().strip()[:200]}")
        if speakers:
            try:
                ctx.kube.apply(metallb_objects(pool, router_ip))
            except Exception as e:  # noqa: BLE001 - the API server's reason, in one line
                raise SvclabError(f"MetalLB refused the BGP set-up: {api_error_message(e)}") from None
        return Edge(subnet=subnet, pool=pool, router_ip=router_ip, router_edge_ip=router_edge_ip,
                    client_ip=client_ip, router=router.name)


def router_json(edge: Edge, command: str) -> Any:
    """The router's answer to the vtysh show COMMAND (with `json` appended), parsed."""
    from ..network import docker_client

    result = docker_client().containers.get(edge.router).exec_run(["vtysh", "-c", f"{command} json"])
    text = result.output.decode(errors="replace")
    try:
        return json.loads(text[text.index("{"):]) if "{" in text else {}
    except ValueError:
        raise SvclabError(f"the router's answer to '{command}' is not JSON: {text.strip()[:200]}") from None
