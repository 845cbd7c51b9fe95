"""Provider kube-vip on its own cluster: every lab holds, the address moves when its holder fails."""

from __future__ import annotations

import ipaddress
import json

import pytest

from .browser import check_report
from .conftest import docker_objects, run_labs, svclab

pytestmark = pytest.mark.e2e
KUBE_VIP = "svclab-e2e-kubevip"


def test_kube_vip_runs_every_lab_and_fails_over(cluster, tmp_path):
    try:
        proc, data = run_labs("lab.all", "--name", KUBE_VIP, "--provider", "kube-vip",
                              "--html", str(tmp_path / "lab.all.html"), tmp_path=tmp_path)
        failed = [r for r in data["results"] if not r["passed"]]
        assert proc.returncode == 0 and not failed, json.dumps(failed, indent=2) + proc.stderr
        results = {(r["lab"], r["probe"]): r for r in data["results"]}
        status = json.loads(svclab("cluster.status", "--name", KUBE_VIP, "--json").stdout)
        first, last = (int(ipaddress.ip_address(a)) for a in status["pool"].split("-"))
        address = results["loadbalancer", "external-address"]["facts"]["value"]
        assert first <= int(ipaddress.ip_address(address)) <= last
        # The pool of this second cluster on the same network does not overlap the first one's.
        other = json.loads(svclab("cluster.status", "--name", cluster, "--json").stdout)["pool"]
        o_first, o_last = (int(ipaddress.ip_address(a)) for a in other.split("-"))
        assert last < o_first or first > o_last
        failover = results["failover", "holder-fails"]["facts"]
        assert failover["holder_after"] != failover["holder_before"]
        assert 0 < failover["failover_seconds"] < 90
        assert set(results["traffic-policy", "local-policy-lb-keeps-client"]["facts"]["source_kinds"]) == {"client"}
        # kube-vip speaks no BGP here: the router beside the cluster sees no session.
        assert results["bgp", "router-learns-the-address"]["facts"]["peers"] == {}
        assert results["tcp-udp", "udp-at-external-address"]["facts"]["answered_targets"] == 1
        ranges = results["source-ranges", "one-client-admitted"]["facts"]
        assert (ranges["admitted_answered"], ranges["other_answered"], ranges["node_port_answered"]) == (3, 0, 3)
        assert results["no-node-ports", "address-still-answers"]["facts"]["answered_targets"] == 1
        # kube-vip takes no Service of svclab's class: nobody answers ARP for the address svclab wrote.
        shortcut = results["vip-shortcut", "pod-reaches-unannounced"]["facts"]
        assert shortcut["pod_answered"] == shortcut["tries"] and shortcut["outside_answered"] == 0
        assert ":" not in shortcut["arp"]
        check_report(tmp_path / "lab.all.html", data, tmp_path / "lab.all.png")
        print(f"\nkube-vip's HTML report and its screenshot: {tmp_path}/lab.all.html, lab.all.png")
    finally:
        svclab("cluster.down", "--name", KUBE_VIP)
    assert docker_objects("svclab.io/cluster=" + KUBE_VIP) == {"containers": [], "networks": []}
