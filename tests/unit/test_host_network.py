"""The host-network lab (C39, C40): clients in a node's own network namespace, nodePort targets on
the client's node and at its loopback, and expectations that follow kube-proxy's mode. Facts of the
nftables run were recorded on a real kind cluster (`SVCLAB_KUBE_PROXY_MODE=nftables svclab
lab.host-network --json`); the iptables run's are in samples/recorded_facts.json."""

import json
import types

import pytest
import yaml
from pydantic import ValidationError

from svclab import labs, plan, probes
from svclab.errors import SvclabError
from svclab.probes import NodeInfo, Topology
from svclab.probes.kinds import http
from svclab.probes.traffic import dial, lab_address, netexec_port
from svclab.schema import LabDefinitionError, parse

LAB = labs.load_lab("host-network")
PROBES = {p.id: p for p in LAB.probes}
TOPOLOGY = Topology(
    nodes=[NodeInfo("kind-control-plane", "172.18.0.4", "10.244.0.0/24", False),
           NodeInfo("kind-worker", "172.18.0.3", "10.244.2.0/24", True),
           NodeInfo("kind-worker2", "172.18.0.2", "10.244.1.0/24", False)],
    pod_nodes={"echo-5ffbc477bd-jgqqg": "kind-worker"},
    client_ip="172.18.255.222", client_pod_ip="10.244.1.9",
    pool=types.SimpleNamespace(subnet="172.18.0.0/16"))
# Recorded under nftables: 127.0.0.1:nodePort refused on each of the 3 nodes, everything else as under iptables.
NFTABLES_LOOPBACK = {"targets": 3, "answered_targets": 0, "silent_targets": 3, "responses": 0, "errors": 6,
                     "backends": [], "backend_nodes": [], "source_kinds": [], "via_nodes": []}
IPTABLES_LOOPBACK = {"targets": 3, "answered_targets": 3, "silent_targets": 0, "responses": 6, "errors": 0,
                     "backends": ["echo-5ffbc477bd-2fggg"], "backend_nodes": ["rec16-worker"], "source_kinds": [],
                     "via_nodes": []}


def _pod(name: str, node: str, *, host_network: bool, port: int | None = 9380) -> dict:
    container = {"name": "agnhost", **({"ports": [{"containerPort": port}]} if port else {})}
    return {"metadata": {"name": name, "namespace": LAB.namespace},
            "spec": {"nodeName": node, "hostNetwork": host_network, "containers": [container]},
            "status": {"phase": "Running", "podIP": "172.18.0.2" if host_network else "10.244.1.5"}}


def _ctx(service: dict | None = None):
    asked = []

    def get_json(path, query, timeout):
        asked.append((path, dict(query)))
        return json.dumps({"responses": ["echo-5ffbc477bd-jgqqg"], "errors": []})

    svc = service or {"metadata": {"name": "echo", "namespace": LAB.namespace},
                      "spec": {"clusterIP": "10.96.1.1", "ports": [{"port": 80, "nodePort": 30395}]}}
    kube = types.SimpleNamespace(get=lambda *a, **k: svc, get_json=get_json)
    ctx = types.SimpleNamespace(kube=kube, namespace=LAB.namespace, topology=TOPOLOGY, client_pod="svclab-client-x",
                                settings=types.SimpleNamespace(probe_timeout=5))
    return ctx, asked


def test_the_loopback_probe_expects_an_answer_only_under_iptables():
    loopback = PROBES["loopback-node-port"]
    assert loopback.expectation("metallb", "iptables").given() == {"answers": True, "backend_prefix": "echo-"}
    for mode in ("nftables", "ipvs"):
        assert loopback.expectation("kube-vip", mode).given() == {"answers": False}
    assert loopback.expectation("metallb", "none") is None and not loopback.for_proxy_mode("unknown")
    assert http.judge(IPTABLES_LOOPBACK, loopback.expectation("none", "iptables")) == []
    assert http.judge(NFTABLES_LOOPBACK, loopback.expectation("none", "nftables")) == []
    # Each verdict can turn red: the other mode's facts fail each expectation.
    assert http.judge(NFTABLES_LOOPBACK, loopback.expectation("none", "iptables")) != []
    assert http.judge(IPTABLES_LOOPBACK, loopback.expectation("none", "nftables")) == ["3 of 3 targets answered"]
    one_node_answers = NFTABLES_LOOPBACK | {"answered_targets": 1, "silent_targets": 2, "responses": 2}
    assert http.judge(one_node_answers, loopback.expectation("none", "nftables")) == ["1 of 3 targets answered"]
    assert http.judge(one_node_answers, loopback.expectation("none", "iptables")) != []


def test_the_expected_absence_waits_for_the_answers_first_in_each_mode():
    batches = {mode: [[p.id for p in batch] for batch in labs.run_order(LAB, "metallb", mode)]
               for mode in ("iptables", "nftables")}
    assert "loopback-node-port" in batches["iptables"][0]
    assert "loopback-node-port" in batches["nftables"][1] and "outside-nothing-on-far-nodes" in batches["nftables"][1]


def test_expect_by_proxy_mode_names_every_mode_and_stands_alone():
    base = {"id": "p", "claim": "C40", "kind": "http", "service": "echo", "via": "cluster-ip"}
    with pytest.raises(ValidationError, match="no expectation for ipvs"):
        http.Spec.model_validate(base | {"expect_by_proxy_mode": {"iptables": {"answers": True},
                                                                  "nftables": {"answers": False}}})
    with pytest.raises(ValidationError, match="give only one of them"):
        http.Spec.model_validate(base | {"expect": {"answers": True}, "expect_by_proxy_mode": {
            m: {"answers": True} for m in ("iptables", "nftables", "ipvs")}})
    with pytest.raises(ValidationError):
        http.Spec.model_validate(base | {"expect_by_proxy_mode": {m: {"answers": True}
                                                                  for m in ("iptables", "nftables", "ebpf")}})


def test_nodes_client_and_loopback_need_the_lab_s_client():
    base = {"id": "p", "claim": "C39", "kind": "http", "service": "echo", "via": "node-port", "expect": {"answers": True}}
    for nodes in ("client", "loopback"):
        with pytest.raises(ValidationError, match=f"nodes: {nodes} is the node of the lab's client"):
            http.Spec.model_validate(base | {"nodes": nodes})
        assert http.Spec.model_validate(base | {"nodes": nodes, "from": "pod", "client": "node-agent"}).nodes == nodes


def test_a_typo_under_expect_by_proxy_mode_is_one_line_naming_the_key():
    text = LAB.directory.joinpath("lab.yaml").read_text().replace("nftables: {answers: false}",
                                                                  "nftables: {answer: false}")
    with pytest.raises(LabDefinitionError) as err:
        parse(yaml.safe_load(text), source="host-network/lab.yaml", claims=labs.load_claims(),
              manifest_exists=lambda name: True, pinned=lambda name: True)
    assert "answer" in str(err.value) and "answers" in str(err.value) and "\n" not in str(err.value)


def test_targets_on_the_client_s_own_node_and_its_loopback():
    ctx, _ = _ctx()
    near, far = _pod("node-agent-a", "kind-worker", host_network=True), _pod("node-agent-b", "kind-worker2", host_network=True)
    own = http.targets(ctx, PROBES["every-node-own-node-port-answers"], far)
    assert own == [("kind-worker2 172.18.0.2:30395 (the client's own node)", "172.18.0.2", 30395)]
    loop = http.targets(ctx, PROBES["loopback-node-port"], near)
    assert loop == [("kind-worker 127.0.0.1:30395 (its own loopback)", "127.0.0.1", 30395)]
    with pytest.raises(SvclabError, match="has its own network namespace"):
        http.targets(ctx, PROBES["loopback-node-port"], _pod("node-agent-a", "kind-worker", host_network=False))
    with pytest.raises(SvclabError, match="not one of the cluster's nodes"):
        http.targets(ctx, PROBES["every-node-own-node-port-answers"], _pod("x", "elsewhere", host_network=True))


def test_a_host_network_client_is_asked_on_its_declared_port_and_alone_may_send_to_loopback():
    ctx, asked = _ctx()
    host = _pod("node-agent-a", "kind-worker", host_network=True)
    assert dial(ctx, "pod", "127.0.0.1", 30395, "hostname", 2, client=host)["responses"]
    path, query = asked[-1]
    assert path == f"/api/v1/namespaces/{LAB.namespace}/pods/node-agent-a:9380/proxy/dial"
    assert query["host"] == "127.0.0.1" and query["tries"] == "2"
    # A pod with a network of its own, and svclab's client, may not: 127.0.0.1 is not a lab address for them.
    with pytest.raises(SvclabError, match="refusing to probe 127.0.0.1"):
        dial(ctx, "pod", "127.0.0.1", 30395, "hostname", 1, client=_pod("c", "kind-worker", host_network=False))
    with pytest.raises(SvclabError, match="refusing to probe 127.0.0.1"):
        dial(ctx, "pod", "127.0.0.1", 30395, "hostname", 1)
    dial(ctx, "pod", "10.96.1.1", 80, "hostname", 1)
    assert asked[-1][0] == "/api/v1/namespaces/svclab-system/pods/svclab-client-x:8080/proxy/dial"
    with pytest.raises(SvclabError):
        lab_address(ctx, "127.0.0.2", in_cluster=True, loopback=True)


def test_netexec_port_is_the_clients_declared_port():
    objects = labs.load_manifests(labs.render_manifest(LAB, "clients.yaml"))
    pods = [{"spec": o["spec"]["template"]["spec"]} for o in objects]
    assert [o["kind"] for o in objects] == ["DaemonSet"]   # one client in every node's network
    assert [netexec_port(p) for p in pods] == [9380]
    assert all(p["spec"]["hostNetwork"] for p in pods)
    for pod in pods:
        security = pod["spec"]["containers"][0]["securityContext"]
        assert security["runAsNonRoot"] and security["capabilities"] == {"drop": ["ALL"]}
        assert not security["allowPrivilegeEscalation"]
    assert netexec_port(_pod("c", "n", host_network=False, port=None)) == 8080


def test_on_a_cluster_svclab_did_not_make_the_loopback_probe_and_unknown_modes_skip():
    found = types.SimpleNamespace(translates_services=True, kube_proxy_mode="iptables",
                                  kube_proxy_detail="kube-proxy, iptables", proxied=False)
    there = types.SimpleNamespace(outside_routes_beyond=False, detected=found, outside="container", installs=())
    runnable, skipped = plan.plan([LAB], there)
    assert [s.probe for s in skipped] == ["loopback-node-port"]
    assert "localhostNodePorts" in skipped[0].reason and "svclab made" in skipped[0].reason
    assert [p.id for p in runnable[0].probes] == ["node-reaches-cluster-ip", "outside-nothing-on-far-nodes",
                                                 "every-node-own-node-port-answers"]
    # A probe whose expectation follows the mode, where a replacement of kube-proxy translates Services.
    by_mode = PROBES["loopback-node-port"].model_copy(update={"nodes": "all", "client": None, "from_": "outside"})
    replaced = types.SimpleNamespace(translates_services=True, kube_proxy_mode="none", proxied=False,
                                     kube_proxy_detail="no kube-proxy; Cilium replaces it")
    assert "depends on kube-proxy's mode" in plan.probe_reason(by_mode, types.SimpleNamespace(
        detected=replaced, outside="container", installs=()))


def test_the_labs_claims_are_in_the_table():
    claims = labs.load_claims()
    assert {"C39", "C40"} <= set(claims) and set(LAB.claims) == {"C39", "C40"}
    assert all(p.claim in LAB.claims for p in LAB.probes)
    assert probes.own_cluster_reason(PROBES["loopback-node-port"])
    assert probes.own_cluster_reason(PROBES["every-node-own-node-port-answers"]) is None


def test_an_http_probe_sends_to_every_target_at_once_and_reports_them_in_node_order():
    import threading
    import time

    ctx, asked = _ctx()
    lock, running, most = threading.Lock(), [0], [0]

    def slow(path, query, timeout):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return json.dumps({"responses": [], "errors": [f"timeout from {dict(query)['host']}"]})

    ctx.kube.get_json = slow
    spec = http.Spec.model_validate({"id": "p", "claim": "C5", "kind": "http", "from": "pod", "service": "echo",
                                     "via": "node-port", "expect": {"answers": False}})
    started = time.monotonic()
    seen = http.observe(ctx, spec)
    assert most[0] == 3 and time.monotonic() - started < 0.8
    assert [line.split(" → ")[1].split()[0] for line in seen.evidence] == [n.name for n in TOPOLOGY.nodes]
    assert all(n.ip in line for n, line in zip(TOPOLOGY.nodes, seen.evidence))
    assert seen.facts["silent_targets"] == 3 and http.judge(seen.facts, spec.expectation("metallb")) == []


def test_every_pod_of_a_daemonset_client_sends_to_its_own_node(monkeypatch):
    ctx, asked = _ctx()
    agents = [_pod(f"node-agent-{n.name[-1]}", n.name, host_network=True) for n in TOPOLOGY.nodes]
    for agent, node in zip(agents, TOPOLOGY.nodes):
        agent["status"]["podIP"] = node.ip
    monkeypatch.setattr(http, "lab_clients", lambda ctx, name: agents)
    own = http.observe(ctx, PROBES["every-node-own-node-port-answers"])
    # One request set per node, from that node's own pod to that node's own address.
    assert sorted((path.split("/pods/")[1].split(":")[0], q["host"]) for path, q in asked) == sorted(
        (a["metadata"]["name"], n.ip) for a, n in zip(agents, TOPOLOGY.nodes))
    assert own.facts["targets"] == 3 and own.facts["answered_targets"] == 3
    assert [line.split(" → ")[0] for line in own.evidence] == [
        f"pod {a['metadata']['name']} on {n.name}, in the node's network" for a, n in zip(agents, TOPOLOGY.nodes)]
    assert http.judge(own.facts, PROBES["every-node-own-node-port-answers"].expectation("metallb", "iptables")) == []
    asked.clear()
    loop = http.observe(ctx, PROBES["loopback-node-port"])
    assert {q["host"] for _, q in asked} == {"127.0.0.1"} and len(asked) == 3 and loop.facts["targets"] == 3
    # Without client_pods: every, the first pod alone sends.
    asked.clear()
    one = PROBES["node-reaches-cluster-ip"].model_copy(update={"client_pods": "one"})
    http.observe(ctx, one)
    assert [path.split("/pods/")[1].split(":")[0] for path, _ in asked] == [agents[0]["metadata"]["name"]]


def test_client_pods_every_needs_a_client():
    base = {"id": "p", "claim": "C39", "kind": "http", "service": "echo", "via": "cluster-ip", "expect": {"answers": True}}
    with pytest.raises(ValidationError, match="client_pods: every sends from each pod of the lab's client"):
        http.Spec.model_validate(base | {"client_pods": "every"})
