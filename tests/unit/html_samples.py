"""Results documents for the HTML report's tests: a real run's (MetalLB, iptables, written before
svclab recorded the topology) and a small synthetic one with the topology, built the way a run
builds it (the http kind's own summary of samples, labs.topology_record, report.to_json), with
one probe that differs and a failover probe's attempts."""

from __future__ import annotations

import json
from pathlib import Path

from svclab import labs, report
from svclab.network import Pool
from svclab.probes import NodeInfo, Topology
from svclab.probes.kinds.http import summarize

REAL = Path(__file__).parent / "samples" / "results_metallb.json"

NODES = [NodeInfo("kind-control-plane", "172.18.0.2", "10.244.0.0/24", False),
         NodeInfo("kind-worker", "172.18.0.3", "10.244.1.0/24", False),
         NodeInfo("kind-worker2", "172.18.0.4", "10.244.2.0/24", True)]
PODS = {"echo-aaaaa": "kind-worker2", "echo-bbbbb": "kind-worker2"}
TOPOLOGY = Topology(nodes=NODES, pod_nodes=PODS, client_ip="172.18.255.200", client_pod_ip="10.244.1.7",
                    pool=Pool(network="kind", subnet="172.18.0.0/16", client_ip="172.18.255.200",
                              first="172.18.255.201", last="172.18.255.220"))
LB = "172.18.255.201"
# The failover probe's attempts after the holder was frozen: four unanswered, then the new holder.
ATTEMPTS = [{"at": 0.0, "answered": False, "pod": None, "node": None},
            {"at": 1.01, "answered": False, "pod": None, "node": None},
            {"at": 2.02, "answered": False, "pod": None, "node": None},
            {"at": 3.03, "answered": False, "pod": None, "node": None},
            {"at": 3.6, "answered": True, "pod": "echo-aaaaa", "node": "kind-worker2"}]


def real_doc() -> dict:
    return json.loads(REAL.read_text())


def _http(lab, probe, claim, path, expected, samples, request, passed, problems=()):
    seen = summarize(samples, TOPOLOGY, client_ip=TOPOLOGY.client_ip, request=request, tries=2,
                     notes=[f"metallb reports the address held by node {samples[0]['via_node']}"])
    return labs.Result(lab=lab, probe=probe, claim=claim, path=path, expected=expected, observed=seen.observed,
                       evidence=seen.evidence, passed=passed, problems=list(problems), seconds=0.5,
                       facts=seen.facts | {"rounds": 1})


def synthetic_results() -> list[labs.Result]:
    target = f"load balancer {LB}"
    return [
        labs.Result(lab="loadbalancer", probe="external-address", claim="C13", path="EXTERNAL-IP from the pool",
                    expected="from svclab's pool", observed=f"status.loadBalancer.ingress[0].ip = {LB}",
                    evidence=[f"Service svclab-loadbalancer/echo: status.loadBalancer.ingress[0].ip = {LB}"],
                    passed=True, problems=[], seconds=0.01, facts={"value": LB, "in_pool": True, "rounds": 1}),
        _http("loadbalancer", "port-80-at-external-address", "C10", "outside client → EXTERNAL-IP:80", "answers",
              [{"label": target, "responses": ["echo-aaaaa", "echo-bbbbb"], "errors": [], "via_node": "kind-worker"}],
              "hostname", True),
        _http("loadbalancer", "local-policy-keeps-client", "C17", "outside client → EXTERNAL-IP (policy Local)",
              "answers, source = client address",
              [{"label": target, "responses": ["172.18.0.3:40000", "172.18.0.3:40002"], "errors": [],
                "via_node": "kind-worker"}],
              "clientip", False, ["source addresses were node"]),
        labs.Result(lab="failover", probe="holder-fails", claim="C21", path="freeze the holding node",
                    expected="answers again within 90s, from another node",
                    observed="failover in 3.6s: kind-worker → kind-worker2",
                    evidence=[f"{LB} answered via node kind-worker (the client's ARP entry)",
                              "cut kind-worker off the network and froze it", "restored kind-worker",
                              f"{LB} answered again after 3.6s (5 attempts), now held by kind-worker2"],
                    passed=True, problems=[], seconds=4.2,
                    facts={"address": LB, "failover_seconds": 3.6, "holder_before": "kind-worker",
                           "holder_after": "kind-worker2", "attempts": ATTEMPTS, "rounds": 1}),
    ]


def synthetic_doc() -> dict:
    record = labs.topology_record(TOPOLOGY)
    text = report.to_json(synthetic_results(), context={
        "cluster": "kind", "provider": "metallb", "kube_proxy_mode": "iptables", "labs": ["loadbalancer", "failover"],
        "topology": {"loadbalancer": record, "failover": record}})
    return json.loads(text)
