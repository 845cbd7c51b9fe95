"""Cutting a node off its network the way a cable is pulled, and putting it back.

The node keeps running and keeps its configuration; its eth0 (the docker network) drops every
packet in and out, IP and ARP alike, so nothing on the network can tell it from a dead machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ..errors import SvclabError

__all__ = ["cut_off", "cutter", "freeze", "isolate", "node_container", "reconnect", "spare_node", "OUTAGE_TABLE"]

ISOLATE_NODE = """
table inet svclab_outage {
  chain ingress { type filter hook prerouting priority -400; policy accept; iifname "eth0" drop; }
  chain forward { type filter hook forward priority -400; policy accept; oifname "eth0" drop; }
  chain egress { type filter hook output priority -400; policy accept; oifname "eth0" drop; }
}
table arp svclab_outage {
  chain input { type filter hook input priority 0; policy drop; }
  chain output { type filter hook output priority 0; policy drop; }
}
"""
RECONNECT_NODE = "delete table inet svclab_outage\ndelete table arp svclab_outage\n"
OUTAGE_TABLE = "svclab_outage"   # the nft tables' name: a node that has them is cut off
FREEZE_ATTEMPTS = 5


def isolate(container):
    """Cuts the node CONTAINER off its network (nft's result: exit code and output)."""
    return container.exec_run(["sh", "-c", f"printf '%s' '{ISOLATE_NODE.strip()}' | nft -f -"])


def reconnect(container) -> None:
    """Puts the node CONTAINER back on its network (nothing happens to one that is not cut off)."""
    container.exec_run(["sh", "-c", f"printf '{RECONNECT_NODE}' | nft -f -"])


def freeze(container, attempts: int = FREEZE_ATTEMPTS) -> int:
    """Pauses the node CONTAINER (every process in it stops, as on a hung machine); returns the
    number of tries it took.

    On cgroup v1 the kernel's freezer can give up while the container's processes keep forking
    (runc then thaws it again and says "unable to freeze"); a busy node is frozen on a later try.
    Any other refusal, or that one ATTEMPTS times, is told in one line."""
    from docker.errors import APIError

    for attempt in range(1, attempts + 1):
        try:
            container.pause()
            return attempt
        except APIError as exc:
            if "unable to freeze" not in str(exc):
                raise SvclabError(f"could not freeze node {container.name}: {exc.explanation or exc}") from exc
            container.reload()
            if container.status == "paused":
                return attempt
            if attempt == attempts:
                raise SvclabError(f"could not freeze node {container.name}: the kernel's freezer gave up "
                                  f"{attempts} times while its processes kept starting") from exc


def node_container(ctx, node: str):
    """The docker container of the lab cluster's node NODE (kind names them after the nodes);
    refuses any container that is not one of this cluster's nodes."""
    from ..network import docker_client

    container = docker_client().containers.get(node)
    if container.labels.get("io.x-k8s.kind.cluster") != ctx.settings.cluster_name:
        raise SvclabError(f"container {node} is not a node of cluster {ctx.settings.cluster_name}; not touching it")
    return container


def spare_node(ctx) -> str:
    """A node that runs none of the lab's pods, a worker if there is one: cutting it off tests the
    path through the nodes, not the loss of a backend. On a cluster whose only worker runs the
    backend it is the control plane, whose API server is then away for the cut."""
    planes = {n["metadata"]["name"] for n in ctx.kube.list("v1", "Node")
              if "node-role.kubernetes.io/control-plane" in (n["metadata"].get("labels") or {})}
    spare = sorted(n.name for n in ctx.topology.nodes if not n.backend)
    workers = [n for n in spare if n not in planes]
    if not spare:
        raise SvclabError("every node runs a backend pod: no node to cut off without losing a backend")
    return (workers or spare)[0]


def cutter(ctx) -> Callable[[str], Callable[[], None]]:
    """A function that cuts a node of CTX's cluster off its network and returns the undo: put it
    back, and wait for the cluster's nodes to be Ready again."""
    def cut(node: str) -> Callable[[], None]:
        container = node_container(ctx, node)
        result = isolate(container)
        if result.exit_code != 0:
            raise SvclabError(f"could not cut {node} off the network: {result.output.decode().strip()[:200]}")

        def undo() -> None:
            reconnect(container)
            ctx.kube.wait_nodes_ready(len(ctx.topology.nodes), timeout=ctx.settings.wait_timeout)
        return undo
    return cut


@contextlib.contextmanager
def cut_off(ctx, node: str, *, frozen: bool = False) -> Iterator[int]:
    """NODE cut off its network (and frozen, with FROZEN) for the block, which gets the number of
    tries freezing took (0: not frozen); put back afterwards, and the cluster's nodes Ready again
    before the block's caller goes on. Where CTX has a shared cut (probes.shared_cut: the labs
    that cut a node at the end of lab.all), an unfrozen cut is made once for all of them."""
    shared = getattr(ctx, "shared_cut", None)
    if shared is not None and not frozen:
        with shared.cut(node):
            yield 0
        return
    container = node_container(ctx, node)
    undo = cutter(ctx)(node)
    try:
        tries = freeze(container) if frozen else 0
        try:
            yield tries
        finally:
            if frozen:
                container.unpause()
    except BaseException:
        reconnect(container)   # the nodes' readiness is no longer waited for: the block failed
        raise
    undo()
