"""Provider `none` on its own one-worker cluster: every lab holds with bare-metal expectations
(LoadBalancer Services stay <pending>); nothing leaks after `down`."""

from __future__ import annotations

import json

import pytest

from .browser import check_report
from .conftest import docker_objects, run_labs, svclab

pytestmark = pytest.mark.e2e
BARE = "svclab-e2e-bare"


def test_bare_metal_loadbalancer_stays_pending_and_cleans_up(cluster, tmp_path):
    before = docker_objects("svclab.io/cluster=" + BARE)
    try:
        proc, data = run_labs("lab.all", "--name", BARE, "--provider", "none", "--workers", "1",
                              "--html", str(tmp_path / "lab.all.html"), tmp_path=tmp_path)
        results = {r["probe"]: r for r in data["results"] if r["lab"] == "loadbalancer"}
        policy = {r["probe"]: r for r in data["results"] if r["lab"] == "traffic-policy"}
        assert proc.returncode == 0, json.dumps([r for r in data["results"] if not r["passed"]], indent=2)
        assert data["provider"] == "none"
        assert results["stays-pending-without-implementation"]["facts"]["pending"] is True
        assert results["external-address"]["facts"]["value"] is None
        assert results["port-80-at-external-address"]["observed"] == "no external address"
        assert results["node-port-answers"]["facts"]["answered_targets"] == 2
        # Without an external address the policies still show through the node ports.
        assert set(policy["local-policy-keeps-client"]["facts"]["source_kinds"]) == {"client"}
        assert set(policy["cluster-policy-hides-client"]["facts"]["source_kinds"]) == {"node"}
        # Bare metal's own answers: a load balancer of your own, DNS round-robin, nodePorts for UDP,
        # TLS at the Ingress controller through a nodePort; no BGP speaker in the cluster.
        every = {(r["lab"], r["probe"]): r for r in data["results"]}
        assert set(every["external-lb", "haproxy-in-front"]["facts"]["status"].values()) == {"UP"}
        assert every["dns-round-robin", "node-cut-off"]["facts"]["retry_failed"] == 0
        assert every["tcp-udp", "udp-node-ports"]["facts"]["answered_targets"] == 2
        assert "nodePort" in " ".join(every["tls", "ingress-terminates"]["evidence"])
        assert every["bgp", "router-learns-the-address"]["facts"]["peers"] == {}
        # Without an implementation too, kube-proxy captures an address written into a Service's status.
        assert every["vip-shortcut", "pod-reaches-unannounced"]["facts"]["outside_answered"] == 0
        assert every["internal-traffic", "far-client-unanswered"]["facts"]["responses"] == 0
        check_report(tmp_path / "lab.all.html", data, tmp_path / "lab.all.png")
        print(f"\nprovider none's HTML report and its screenshot: {tmp_path}/lab.all.html, lab.all.png")
    finally:
        svclab("cluster.down", "--name", BARE)
    assert docker_objects("svclab.io/cluster=" + BARE) == before == {"containers": [], "networks": []}
    assert BARE not in svclab("cluster.status", "--name", BARE, "--json").stdout.split('"nodes"')[1].split("]")[0]
    again = svclab("cluster.down", "--name", BARE)
    assert "nothing to do" in again.stderr
