"""Repairs what a svclab command killed mid-run (lock.Unfinished) can leave behind: a node still
frozen or cut off its network by a failover-style probe, and lab namespaces in a half-changed
state (a Service's status written, a Deployment scaled to zero, a policy flipped). Nodes are
repaired through Docker before anything talks to the cluster (a frozen control plane answers
nothing); the namespaces are deleted, and the labs apply them afresh."""

from __future__ import annotations

from collections.abc import Sequence

from . import freezer
from .cluster import node_containers
from .probes.outage import OUTAGE_TABLE, reconnect

__all__ = ["repair", "repair_nodes", "remove_namespaces"]


def repair_nodes(dc, cluster: str) -> list[str]:
    """Thaws, unpauses and reconnects CLUSTER's nodes; returns what was done, one line each."""
    done = []
    for container in node_containers(dc, cluster, stopped=False):
        container.reload()
        if container.status == "paused":
            container.unpause()
            done.append(f"unpaused node {container.name}")
        if freezer.thaw(container.id):
            done.append(f"thawed node {container.name}")
        tables = container.exec_run(["nft", "list", "tables"]).output.decode(errors="replace")
        if OUTAGE_TABLE in tables:
            reconnect(container)
            done.append(f"reconnected node {container.name}")
    return done


def remove_namespaces(kube, names: Sequence[str], *, timeout: float) -> list[str]:
    """Deletes those of the lab namespaces NAMES that exist (waiting for each to go); returns them."""
    removed = []
    for name in names:
        if kube.get("v1", "Namespace", name) is not None:
            kube.delete_namespace(name, timeout=timeout)
            removed.append(name)
    return removed


def repair(settings, namespaces: Sequence[str]) -> list[str]:
    """Repairs SETTINGS' cluster after an unfinished command that worked in NAMESPACES: its nodes,
    then (once the API server answers) those namespaces; returns what was done."""
    from .kube import Kube
    from .network import docker_client

    done = repair_nodes(docker_client(), settings.cluster_name)
    if namespaces and not settings.targets_own_cluster:   # the user's cluster: only svclab's namespaces
        from .target import kube_for

        kube = kube_for(settings)
        done += [f"removed namespace {name}" for name in
                 remove_namespaces(kube, namespaces, timeout=settings.wait_timeout)]
    elif namespaces and settings.own_kubeconfig.exists():
        kube = Kube(settings.own_kubeconfig)
        kube.wait_api_server(timeout=settings.wait_timeout)
        done += [f"removed namespace {name}" for name in
                 remove_namespaces(kube, namespaces, timeout=settings.wait_timeout)]
    return done
