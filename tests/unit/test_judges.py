"""Every probe kind's judge, on facts recorded from real clusters (tests/unit/samples/
recorded_facts.json: `lab.all --json` once per provider, kube-proxy in iptables mode) and on those facts changed the way a
misbehaving network would change them: each expectation must be able to fail."""

import json
import types
from pathlib import Path

import pytest

from svclab import labs, probes
from svclab.errors import SvclabError
from svclab.probes import NodeInfo, Topology
from svclab.probes.kinds import (addresses, dns, failover, health_check, http, pending, policy_flip, rejects,
                                 service)
from svclab.probes.traffic import lab_address

RECORDED = json.loads((Path(__file__).parent / "samples" / "recorded_facts.json").read_text())["providers"]
TOPOLOGY = Topology(
    nodes=[NodeInfo("svclab-control-plane", "172.18.0.3", "10.244.0.0/24", False),
           NodeInfo("svclab-worker", "172.18.0.2", "10.244.1.0/24", True),
           NodeInfo("svclab-worker2", "172.18.0.4", "10.244.2.0/24", True)],
    pod_nodes={"echo-a": "svclab-worker", "echo-b": "svclab-worker2"},
    client_ip="172.18.255.254", client_pod_ip="10.244.1.9")


def _recorded() -> list:
    return [pytest.param(provider, r, id=f"{provider}-{r['lab']}-{r['probe']}")
            for provider, results in RECORDED.items() for r in results]


@pytest.mark.parametrize("provider, recorded", _recorded())
def test_recorded_facts_get_the_recorded_verdict(provider, recorded):
    probe = next(p for p in labs.load_lab(recorded["lab"]).probes if p.id == recorded["probe"])
    problems = probes.judge(probe, recorded["facts"], probe.expectation(provider, "iptables"), TOPOLOGY)
    assert (not problems) == recorded["passed"], problems


def test_every_kind_a_lab_uses_has_recorded_samples():
    """A new kind is tested on its own first; once a built-in lab uses it, record a run."""
    recorded_kinds = {next(p for p in labs.load_lab(r["lab"]).probes if p.id == r["probe"]).kind
                      for results in RECORDED.values() for r in results}
    used = {p.kind for lab_id in labs.lab_ids() for p in labs.load_lab(lab_id).probes}
    assert used <= recorded_kinds


def _facts(provider, lab, probe):
    return next(r["facts"] for r in RECORDED[provider] if r["lab"] == lab and r["probe"] == probe)


# ------------------------------------------------------------------ http

def test_http_answers_from_every_target():
    facts = _facts("metallb", "nodeport", "every-node")
    expect = http.Expect(answers=True)
    assert http.judge(facts, expect) == []
    one_silent = facts | {"answered_targets": facts["targets"] - 1, "silent_targets": 1}
    assert http.judge(one_silent, expect) == [f"1 of {facts['targets']} targets did not answer every request"]
    assert http.judge(facts | {"errors": 1}, expect) != []
    assert http.judge(facts | {"targets": 0, "answered_targets": 0}, expect) != []


def test_http_expected_silence():
    silent = _facts("metallb", "clusterip", "outside-to-cluster-ip")
    assert http.judge(silent, http.Expect(answers=False)) == []
    answered = _facts("metallb", "clusterip", "pod-to-cluster-ip")
    assert http.judge(answered, http.Expect(answers=False)) == ["1 of 1 targets answered"]


def test_http_spread_and_backend_prefix():
    spread = _facts("metallb", "loadbalancer", "spread-over-backends")
    expect = http.Expect(answers=True, min_backends=2, min_backend_nodes=2)
    assert http.judge(spread, expect) == []
    assert http.judge(spread | {"backend_nodes": spread["backend_nodes"][:1]}, expect) == ["backends on 1 nodes"]
    assert http.judge(spread | {"backends": spread["backends"][:1]}, expect) == ["reached 1 backends"]
    shop = _facts("metallb", "ingress", "host-a-reaches-shop-a")
    assert http.judge(shop, http.Expect(backend_prefix="shop-a-")) == []
    assert http.judge(shop, http.Expect(backend_prefix="shop-b-")) == [f"served by {', '.join(shop['backends'])}"]


def test_http_source_address():
    hidden = _facts("metallb", "traffic-policy", "cluster-policy-hides-client")
    kept = _facts("metallb", "traffic-policy", "local-policy-keeps-client")
    assert http.judge(hidden, http.Expect(source="node")) == []
    assert http.judge(kept, http.Expect(source="client")) == []
    assert http.judge(hidden, http.Expect(source="client")) == ["source addresses were node"]
    assert http.judge(kept | {"source_kinds": []}, http.Expect(source="client")) == ["no source address observed"]


def test_http_samples_become_facts_with_the_topology():
    seen = http.summarize(
        [{"label": "load balancer 172.18.255.200", "responses": ["echo-a", "echo-b", "echo-a"], "errors": [],
          "via_node": "svclab-worker"}], TOPOLOGY, client_ip=TOPOLOGY.client_ip, request="hostname", tries=3)
    assert seen.facts["backends"] == ["echo-a", "echo-b"]
    assert seen.facts["backend_nodes"] == ["svclab-worker", "svclab-worker2"]
    assert seen.observed == "1/1 answered via node svclab-worker, 2 backends on 2 nodes"
    sources = http.summarize(
        [{"label": "n", "responses": ["172.18.255.254:41000", "10.244.2.1:5000"], "errors": [], "via_node": None}],
        TOPOLOGY, client_ip=TOPOLOGY.client_ip, request="clientip", tries=2)
    assert sources.facts["source_kinds"] == ["client", "node"]
    assert http.judge(sources.facts, http.Expect(source="client")) == ["source addresses were client, node"]


# ------------------------------------------------------------------ the other kinds

def test_service_fields():
    assert service.judge(_facts("metallb", "clusterip", "default-type"), service.Expect(equals="ClusterIP")) == []
    assert service.judge({"value": "NodePort"}, service.Expect(equals="ClusterIP")) == ["'NodePort' is not 'ClusterIP'"]
    port = _facts("metallb", "nodeport", "node-port-assigned")
    assert service.judge(port, service.Expect(in_range=(30000, 32767))) == []
    assert service.judge({"value": 80}, service.Expect(in_range=(30000, 32767))) == ["80 is not within 30000–32767"]
    assert service.judge({"value": True}, service.Expect(in_range=(0, 5))) != []
    assert service.judge({"value": None}, service.Expect(set=True)) == ["value is not set"]
    assert service.judge({"value": None}, service.Expect(set=False)) == []
    pool = _facts("metallb", "loadbalancer", "external-address")
    assert service.judge(pool, service.Expect(in_pool=True)) == []
    assert service.judge(pool | {"in_pool": False}, service.Expect(in_pool=True)) != []


def test_dns():
    facts = _facts("metallb", "clusterip", "dns-resolves")
    assert dns.judge(facts, dns.Expect(resolves_to_cluster_ip=True)) == []
    assert dns.judge(facts | {"value": None}, dns.Expect(resolves_to_cluster_ip=True)) != []
    assert dns.judge(facts, dns.Expect(resolves_to_cluster_ip=False)) != []


def test_health_check_per_node():
    facts = _facts("metallb", "traffic-policy", "health-check-per-node")
    expect = health_check.Expect(healthy_where_backends=True)
    assert health_check.judge(facts, expect) == []
    node = next(n for n, c in facts["codes"].items() if c == 503)
    assert health_check.judge(facts | {"codes": facts["codes"] | {node: 200}}, expect) == [f"{node} answered 200"]
    assert health_check.judge(facts | {"codes": {}}, expect) == ["no node answered the health check"]
    assert health_check.summary({"a": 200, "b": 503, "c": 503}) == "200 on a; 503 on b, c"


def test_addresses():
    facts = _facts("metallb", "ingress", "one-address-per-loadbalancer")
    assert addresses.judge(facts, addresses.Expect(one_address_each=True)) == []
    shared = facts | {"addresses": facts["addresses"][:1] * 2, "lb_services": 2}
    assert addresses.judge(shared, addresses.Expect(one_address_each=True)) == [
        "2 LoadBalancer Services hold 1 distinct addresses"]
    assert addresses.judge(_facts("none", "ingress", "one-address-per-loadbalancer"),
                           addresses.Expect(one_address_each=False)) == []
    assert addresses.judge(facts, addresses.Expect(one_address_each=False)) != []


def test_the_cost_argument_in_dollars():
    assert addresses.monthly_cost(3, 2, (15, 25)) == (
        "at $15–25 a month per cloud load balancer, these 3 LoadBalancer Services cost $45–75 a month; "
        "the 2 host names behind the Ingress share one ($15–25), where a Service each would cost $30–50")
    assert addresses.monthly_cost(1, 0, (20, 20)) == (
        "at $20 a month per cloud load balancer, this LoadBalancer Service costs $20 a month")


def test_policy_flip():
    facts = _facts("metallb", "traffic-policy", "flip-the-live-policy")
    assert policy_flip.judge(facts, policy_flip.Expect(flips_source=True)) == []
    stayed = facts | {"after_source": facts["before_source"]}
    assert policy_flip.judge(stayed, policy_flip.Expect(flips_source=True)) == [f"source stayed {facts['before_source']}"]
    assert policy_flip.judge(facts | {"after_source": None}, policy_flip.Expect(flips_source=True)) == [
        "no source address observed"]


def test_rejects():
    facts = _facts("metallb", "nodeport", "already-allocated")
    assert rejects.judge(facts, rejects.Expect(message="already allocated")) == []
    assert rejects.judge(facts, rejects.Expect(message="not in the valid range")) == ["rejected with another message"]
    assert rejects.judge({"message": None}, rejects.Expect(message="x")) == ["the API server accepted it"]


def test_pending():
    assert pending.judge(_facts("metallb", "pending", "stays-pending"), pending.Expect(pending=True)) == []
    assert pending.judge({"pending": False, "value": "172.18.255.200"}, pending.Expect(pending=True)) == [
        "an address was assigned"]
    assert pending.judge({"pending": True}, pending.Expect(pending=False)) == ["no address was assigned"]


def test_failover():
    facts = _facts("metallb", "failover", "holder-fails")
    assert failover.judge(facts, failover.Expect(recovers_within=90)) == []
    assert failover.judge(facts | {"failover_seconds": 95.0}, failover.Expect(recovers_within=90)) == ["took 95.0s"]
    assert failover.judge(facts | {"holder_after": facts["holder_before"]}, failover.Expect(recovers_within=90)) == [
        "the same node still holds the address"]
    assert failover.judge({"address": "172.18.255.200", "holder_before": "w"}, failover.Expect(recovers_within=90)) == [
        "the address did not answer again"]
    assert failover.judge(_facts("none", "failover", "holder-fails"), failover.Expect(has_address=False)) == []
    assert failover.judge(facts, failover.Expect(has_address=False)) == ["the Service got an external address"]


# ------------------------------------------------------------------ what the expectations say

@pytest.mark.parametrize("expect, text", [
    (http.Expect(answers=True, min_backends=2, min_backend_nodes=2), "answers, ≥2 backends, on ≥2 nodes"),
    (http.Expect(answers=True, source="node"), "answers, source = a node address"),
    (pending.Expect(pending=True), "stays <pending>"),
    (service.Expect(in_range=(30000, 32767)), "in 30000–32767"),
    (rejects.Expect(message="already allocated"), "rejected: /already allocated/"),
    (failover.Expect(recovers_within=90), "answers again within 90s, from another node"),
])
def test_descriptions(expect, text):
    assert expect.describe() == text


def test_predictions_derive_from_the_expectation():
    assert http.Expect(answers=True, source="node").prediction().right == "node"
    assert http.Expect(answers=False).prediction().right == "no answer"
    assert http.Expect(answers=True, min_backends=2).prediction() is None
    assert pending.Expect(pending=True).prediction().right == "<pending>"
    assert service.Expect(in_range=(1, 2)).prediction() is None


def test_only_convergent_observations_settle():
    assert http.Expect(answers=True, min_backends=2).settles
    assert health_check.Expect(healthy_where_backends=True).settles
    assert not http.Expect(answers=False).settles
    assert not pending.Expect(pending=True).settles
    assert not rejects.Expect(message="already allocated").settles


def test_node_owns_its_address_and_pod_gateway():
    node = NodeInfo("w1", "172.18.0.3", "10.244.1.0/24", True)
    assert node.owns("172.18.0.3") and node.owns("10.244.1.1")
    assert not node.owns("10.244.1.7")
    assert not NodeInfo("w2", "172.18.0.4", None, False).owns("10.244.1.1")


def test_probes_only_target_lab_addresses():
    ctx = types.SimpleNamespace(outside=None, topology=types.SimpleNamespace(pool=types.SimpleNamespace(subnet="172.18.0.0/16")))
    assert lab_address(ctx, "172.18.255.250") == "172.18.255.250"
    assert lab_address(ctx, "10.96.12.1") == "10.96.12.1"            # a ClusterIP
    assert lab_address(ctx, "echo.svclab-dns.svc.cluster.local", in_cluster=True).startswith("echo.")
    for bad, in_cluster in (("8.8.8.8", False), ("192.168.1.1", True), ("127.0.0.1", False),
                            ("echo.svclab-dns.svc.cluster.local", False), ("example.com", True),
                            ("172.18.0.1; rm -rf /", False)):
        with pytest.raises(SvclabError, match="refusing to probe"):
            lab_address(ctx, bad, in_cluster=in_cluster)
    # An outside client with a default route (a user's container) is sent no Service or pod address;
    # the in-cluster client still is.
    ctx.outside = types.SimpleNamespace(routes_beyond=True)
    assert lab_address(ctx, "172.18.255.250") == "172.18.255.250"
    assert lab_address(ctx, "10.96.12.1", in_cluster=True) == "10.96.12.1"
    with pytest.raises(SvclabError, match="refusing to probe 10.96.12.1: outside svclab's networks"):
        lab_address(ctx, "10.96.12.1")


def test_topology_from_a_node():
    node = {"metadata": {"name": "svclab-worker", "labels": {"svclab.io/backend-node": "true"}},
            "spec": {"podCIDR": "10.244.1.0/24", "providerID": "kind://docker/svclab/svclab-worker"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"},
                                     {"type": "Hostname", "address": "svclab-worker"}]}}
    info = labs.topology_node(node)
    assert (info.name, info.ip, info.pod_cidr, info.backend) == ("svclab-worker", "172.18.0.2", "10.244.1.0/24", True)
    assert info.owns("10.244.1.1")
    bare = labs.topology_node({"metadata": {"name": "n"}})
    assert (bare.ip, bare.pod_cidr, bare.backend) == ("", None, False)


def test_load_balancer_refusals_from_events():
    from svclab.probes.traffic import allocation_failure

    refused = {"type": "Warning", "reason": "AllocationFailed", "message": "no available IPs",
               "lastTimestamp": "2026-12-01T10:00:05Z", "metadata": {"creationTimestamp": "2026-12-01T10:00:05Z"}}
    assert allocation_failure([refused]) == "AllocationFailed: no available IPs"
    assert allocation_failure([refused], since="2026-12-01T10:00:00Z") == "AllocationFailed: no available IPs"
    assert allocation_failure([refused], since="2026-12-01T10:01:00Z") is None   # an earlier Service's
    assert allocation_failure([refused | {"type": "Normal"}]) is None
    assert allocation_failure([refused | {"reason": "IPAllocated"}]) is None
