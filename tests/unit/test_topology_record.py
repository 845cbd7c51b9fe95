"""The topology the results JSON records per lab (what the HTML report draws): read from the
cluster's Nodes and Pods as a lab run reads it, and None when the cluster cannot show it."""

from __future__ import annotations

import types

from svclab import labs
from svclab.lifecycle import SYSTEM_NAMESPACE
from svclab.network import Pool

POOL = Pool(network="kind", subnet="172.18.0.0/16", client_ip="172.18.255.200", first="172.18.255.201",
            last="172.18.255.220")


def _node(name, ip, backend=False):
    labels = {"svclab.io/backend-node": "true"} if backend else {}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"podCIDR": f"10.244.{ip[-1]}.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def _pod(name, node, ip, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIP": ip}}


class FakeKube:
    def __init__(self, clients):
        self.clients = clients

    def list(self, api, kind, namespace=None, label_selector=None):
        if kind == "Node":
            return [_node("kind-worker", "172.18.0.3"), _node("kind-worker2", "172.18.0.4", backend=True)]
        if namespace == SYSTEM_NAMESPACE:
            return self.clients
        return [_pod("echo-1", "kind-worker2", "10.244.2.5"),
                _pod("caller-1", "kind-worker", "10.244.1.9", {"svclab.io/client": "true"})]


def _env(clients):
    return types.SimpleNamespace(kube=FakeKube(clients), pool=POOL)


def test_the_record_has_nodes_pods_clients_and_the_pool():
    lab = labs.load_lab("loadbalancer")
    record = labs.topology_now(_env([_pod("svclab-client-0", "kind-worker", "10.244.1.7")]), lab)
    assert record == {
        "nodes": [{"name": "kind-worker", "ip": "172.18.0.3", "pod_cidr": "10.244.3.0/24", "backend": False},
                  {"name": "kind-worker2", "ip": "172.18.0.4", "pod_cidr": "10.244.4.0/24", "backend": True}],
        "pods": {"echo-1": "kind-worker2"},   # the lab's own client pods send; they are not backends
        "client_ip": "172.18.255.200", "client_pod_ip": "10.244.1.7",
        "pool": {"subnet": "172.18.0.0/16", "range": "172.18.255.201-172.18.255.220"}}


def test_no_record_when_the_client_pod_is_not_running():
    assert labs.topology_now(_env([]), labs.load_lab("loadbalancer")) is None
