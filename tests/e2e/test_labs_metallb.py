"""lab.all against MetalLB: every verdict, and the evidence behind it."""

from __future__ import annotations

import ipaddress
import json
import statistics

import pytest

from .browser import check_report
from .conftest import run_labs, svclab

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def results(metallb_all):
    proc, data, _ = metallb_all
    failed = [r for r in data["results"] if not r["passed"]]
    assert proc.returncode == 0 and not failed, json.dumps(failed, indent=2) + proc.stderr
    return {(r["lab"], r["probe"]): r for r in data["results"]}


@pytest.fixture(scope="module")
def status(cluster):
    return json.loads(svclab("cluster.status", "--name", cluster, "--json").stdout)


def test_every_probe_as_expected_and_counted(results):
    assert len(results) >= 37
    assert all(r["passed"] for r in results.values())


def test_c1_default_type(results):
    assert results["clusterip", "default-type"]["facts"]["value"] == "ClusterIP"


def test_c2_cluster_ip_inside_only(results):
    inside = results["clusterip", "pod-to-cluster-ip"]["facts"]
    assert inside["responses"] == 4 and inside["errors"] == 0
    outside = results["clusterip", "outside-to-cluster-ip"]
    assert outside["facts"]["responses"] == 0
    assert "unreachable" in outside["evidence"][0]


def test_c3_dns_name(results):
    facts = results["clusterip", "dns-resolves"]["facts"]
    assert facts["value"] == facts["cluster_ip"]
    assert ipaddress.ip_address(facts["value"]) in ipaddress.ip_network("10.96.0.0/12")
    assert results["clusterip", "pod-to-dns-name"]["facts"]["responses"] == 4


def test_c5_every_node_including_those_without_backend(results, status):
    every = results["nodeport", "every-node"]["facts"]
    assert every["targets"] == len(status["nodes"]) == 3
    assert every["answered_targets"] == 3
    without = results["nodeport", "nodes-without-backend"]["facts"]
    assert without["targets"] == 2 and without["answered_targets"] == 2
    assert len(without["backend_nodes"]) == 1  # the one backend pod, on another node


def test_c6_c8_api_server_rejections(results):
    assert "not in the valid range" in results["nodeport", "out-of-range"]["facts"]["message"]
    assert "already allocated" in results["nodeport", "already-allocated"]["facts"]["message"]


def test_c7_c9_allocations(results):
    assert 30000 <= results["nodeport", "node-port-assigned"]["facts"]["value"] <= 32767
    assert 30000 <= results["loadbalancer", "node-port-too"]["facts"]["value"] <= 32767
    assert results["loadbalancer", "cluster-ip-too"]["facts"]["value"]


def test_c10_c13_address_from_the_carved_pool(results, status):
    address = results["loadbalancer", "external-address"]["facts"]["value"]
    first, last = status["pool"].split("-")
    assert int(ipaddress.ip_address(first)) <= int(ipaddress.ip_address(address)) <= int(ipaddress.ip_address(last))
    assert results["loadbalancer", "port-80-at-external-address"]["facts"]["answered_targets"] == 1


def test_c11_spread(results):
    facts = results["loadbalancer", "spread-over-backends"]["facts"]
    assert facts["responses"] == 20
    assert len(facts["backends"]) >= 2 and len(facts["backend_nodes"]) >= 2


def test_c12_pending_whatever_is_installed(results):
    assert results["pending", "stays-pending"]["facts"]["pending"] is True
    assert results["pending", "node-port-still-answers"]["facts"]["answered_targets"] == 3


def test_c15_path_names_the_announcing_node(results):
    evidence = results["loadbalancer", "path-through-nodes"]["evidence"]
    assert any("via node svclab-e2e-worker" in line and "ARP" in line for line in evidence)


def test_every_write_of_svclab_s_is_on_record_as_its_own(results, cluster):
    # What the census on a user's cluster relies on: the API server records svclab as the manager
    # of its applies (no-endpoints' Service) and of its other writes (the lab scaled its echo).
    from svclab.config import load_settings
    from svclab.kube import Kube

    kube = Kube(load_settings({"cluster_name": cluster}).own_kubeconfig)
    service = kube.get("v1", "Service", "echo-scaled", "svclab-no-endpoints")
    deployment = kube.get("apps/v1", "Deployment", "echo", "svclab-no-endpoints")
    managers = {(e["manager"], e["operation"]) for obj in (service, deployment) for e in obj["metadata"]["managedFields"]}
    assert {("svclab", "Apply"), ("svclab", "Update")} <= managers, managers
    assert not any(m.startswith("OpenAPI-Generator") for m, _ in managers), managers


def test_labs_run_again_on_the_same_cluster(cluster, tmp_path):
    proc, data = run_labs("lab.nodeport", "--name", cluster, tmp_path=tmp_path)
    assert proc.returncode == 0 and data["summary"]["failed"] == 0


def test_a_short_soak_on_the_same_cluster(cluster, tmp_path):
    out = tmp_path / "soak.json"
    proc = svclab("soak", "--runs", "3", "--labs", "clusterip,nodeport", "--name", cluster, "--json", str(out),
                  check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["runs"] == 3 and len(report["seconds"]) == 3 and report["stopped"] is None
    assert report["summary"]["unexpected"] == 0 and report["unexpected"] == []
    assert report["labs"] == ["clusterip", "nodeport"]
    assert report["probes"] and all(t == {"ran": 3, "passed": 3} for t in report["probes"].values())
    assert "3 runs of 2 labs" in proc.stdout and "0 unexpected verdicts" in proc.stdout


def test_up_again_reuses(cluster):
    proc = svclab("cluster.up", "--name", cluster)
    assert "reusing cluster" in proc.stderr


def test_other_shape_is_refused(cluster):
    proc = svclab("cluster.up", "--name", cluster, "--workers", "1", check=False)
    assert proc.returncode == 2
    assert "exists with workers=2, and --workers asks for 1" in proc.stderr


def test_c16_cluster_policy_backend_sees_a_node(results, status):
    for probe in ("cluster-policy-hides-client", "cluster-policy-lb-hides-client"):
        facts = results["traffic-policy", probe]["facts"]
        assert facts["source_kinds"] and set(facts["source_kinds"]) == {"node"}
    evidence = " ".join(results["traffic-policy", "cluster-policy-hides-client"]["evidence"])
    assert status["client_ip"] not in evidence


def test_c17_local_policy_backend_sees_the_client(results, status):
    for probe in ("local-policy-keeps-client", "local-policy-lb-keeps-client"):
        result = results["traffic-policy", probe]
        assert set(result["facts"]["source_kinds"]) == {"client"}
        assert status["client_ip"] in " ".join(result["evidence"])


def test_c18_health_check_and_silent_nodes(results):
    facts = results["traffic-policy", "health-check-per-node"]["facts"]
    assert len(facts["codes"]) == 3
    assert [n for n, c in facts["codes"].items() if c == 200] == facts["backend_nodes"]
    assert sorted(c for c in facts["codes"].values() if c != 200) == [503, 503]
    silent = results["traffic-policy", "local-policy-no-backend-no-answer"]["facts"]
    assert silent["targets"] == 2 and silent["responses"] == 0


def test_c14_c21_failover_moves_the_address(results):
    holder = results["loadbalancer", "path-through-nodes"]
    assert holder["passed"]
    facts = results["failover", "holder-fails"]["facts"]
    assert facts["holder_before"] and facts["holder_after"] and facts["holder_before"] != facts["holder_after"]
    assert 0 < facts["failover_seconds"] < 90


@pytest.mark.parametrize("lab, probe_a, probe_b", [
    ("ingress", "host-a-reaches-shop-a", "host-b-reaches-shop-b"),
    ("gateway", "route-a-reaches-shop-a", "route-b-reaches-shop-b"),
])
def test_c19_one_address_fans_out_by_host(results, lab, probe_a, probe_b):
    for probe, shop in ((probe_a, "shop-a-"), (probe_b, "shop-b-")):
        backends = results[lab, probe]["facts"]["backends"]
        assert backends and all(name.startswith(shop) for name in backends)


def test_c20_each_loadbalancer_service_takes_an_address(results):
    facts = results["ingress", "one-address-per-loadbalancer"]["facts"]
    assert facts["lb_services"] == 3 and len(set(facts["addresses"])) == 3
    assert facts["ingress_addresses"] == [facts["by_service"]["svclab-traefik/traefik"]]



def test_c22_router_has_one_path_per_worker_and_traffic_enters_through_both(results, status):
    facts = results["bgp", "router-learns-the-address"]["facts"]
    workers = sorted(n for n in status["nodes"] if "control-plane" not in n)
    assert set(facts["peers"].values()) == {"Established"} and len(facts["peers"]) == 3
    assert facts["next_hops"] == workers == facts["eligible_nodes"]
    assert facts["entry_nodes"] == workers and facts["answered"] == facts["tries"]
    assert "not announcing (label node.kubernetes.io/exclude-from-external-load-balancers)" in \
        " ".join(results["bgp", "router-learns-the-address"]["evidence"])


def test_c23_local_policy_announced_only_by_the_pods_node(results):
    facts = results["bgp", "local-announces-pod-nodes"]["facts"]
    assert facts["next_hops"] == facts["backend_nodes"] and len(facts["next_hops"]) == 1
    assert set(facts["sources"]) == {facts["client_ip"]}


def test_c24_withdrawal_measured_by_the_prober(results):
    facts = results["bgp", "node-withdrawn"]["facts"]
    assert facts["cut_node"] not in facts["next_hops_after"] and facts["cut_node"] in facts["next_hops"]
    assert 0 < facts["withdrawn_after"] <= 15
    assert facts["failed_during"] >= 1 and facts["answered_after"] == facts["tried_after"]


def test_c25_haproxy_checks_every_node_and_routes_around_one(results, status):
    cluster = results["external-lb", "haproxy-in-front"]["facts"]
    assert set(cluster["status"]) == set(status["nodes"]) and set(cluster["status"].values()) == {"UP"}
    assert cluster["answered"] == cluster["tries"] and sum(1 for c in cluster["sessions"].values() if c) >= 2
    local = results["external-lb", "haproxy-checks-local"]["facts"]
    assert [n for n, s in local["status"].items() if s == "UP"] == local["backend_nodes"]
    assert local["sessions"][local["backend_nodes"][0]] == local["tries"]
    cut = results["external-lb", "node-cut-off"]["facts"]
    assert 0 < cut["marked_down_after"] <= 6 and cut["failed_during"] == 0


def test_c26_dns_round_robin_keeps_handing_out_the_dead_node(results):
    spread = results["dns-round-robin", "name-lists-every-node"]["facts"]
    assert spread["complete_answers"] == spread["tries"] and len(spread["first_by_node"]) >= 2
    cut = results["dns-round-robin", "node-cut-off"]["facts"]
    assert cut["answers_with_cut"] == cut["tries"]
    assert 0 < cut["first_failed"] < cut["tries"] and cut["retry_failed"] == 0
    assert cut["retries_needed"] == cut["first_failed"]


def test_c27_tls_per_host_at_both_terminators(results):
    for probe in ("ingress-terminates", "load-balancer-terminates"):
        facts = results["tls", probe]["facts"]
        assert set(facts["hosts"]) == {"shop.tls.svclab.test", "blog.tls.svclab.test"}
        for host, seen in facts["hosts"].items():
            assert seen["verified"] and f"CN={host}" in seen["subject"].replace(" ", "")
            assert seen["forwarded_proto"] == "https"
        assert not facts["wrong"]["verified"]


def test_c28_raw_tcp_and_udp_but_not_through_the_ingress(results):
    for probe in ("tcp-at-external-address", "udp-at-external-address"):
        facts = results["tcp-udp", probe]["facts"]
        assert facts["targets"] == facts["answered_targets"] == 1
    assert results["tcp-udp", "udp-node-ports"]["facts"]["answered_targets"] == 3
    for probe in ("tcp-not-through-ingress", "udp-not-through-ingress"):
        facts = results["tcp-udp", probe]["facts"]
        assert facts["targets"] == facts["silent_targets"] == 1


def test_c29_affinity_keeps_one_pod_only_when_asked(results):
    assert len(results["affinity", "sticky-from-a-pod"]["facts"]["backends"]) == 1
    assert len(results["affinity", "plain-from-a-pod"]["facts"]["backends"]) >= 2


def test_c30_internal_policy_local_answers_only_the_backends_node(results):
    near = results["internal-traffic", "near-client-answered"]["facts"]
    assert near["responses"] == 6 and len(near["backends"]) == 1
    far = results["internal-traffic", "far-client-unanswered"]["facts"]
    assert far["responses"] == 0 and far["targets"] == 1
    assert results["internal-traffic", "far-client-answered-under-cluster"]["facts"]["responses"] == 2


def test_c39_c40_a_node_s_own_traffic(results):
    """From every node's own network namespace: the ClusterIP and the node's own nodePort answer,
    the latter under policy Local where the outside client gets nothing; 127.0.0.1 answers (iptables)."""
    for probe in ("node-reaches-cluster-ip", "every-node-own-node-port-answers"):
        facts = results["host-network", probe]["facts"]
        assert facts["targets"] == facts["answered_targets"] == 3, probe    # one client per node, all answered
        assert facts["responses"] == 6 and facts["backends"][0].startswith("echo-"), probe
    outside = results["host-network", "outside-nothing-on-far-nodes"]["facts"]
    assert outside["targets"] == outside["silent_targets"] >= 1 and outside["responses"] == 0
    assert results["host-network", "loopback-node-port"]["facts"]["responses"] == 6
    evidence = " ".join(results["host-network", "loopback-node-port"]["evidence"])
    assert "in the node's network → " in evidence and "127.0.0.1:" in evidence


def test_c31_c33_names_and_endpoints_by_hand(results):
    assert results["dns", "headless-lists-ready-pods"]["passed"]
    outside = results["dns", "selectorless-reaches-outside"]["facts"]
    assert outside["answered"] == outside["served_outside"] == outside["tries"]
    assert outside["answers"] == ["svclab-outside-server"]


def test_c34_refusals_are_quick(results):
    tries = results["no-endpoints", "no-pod-node-port-refused"]["facts"]["refused"]
    by_target = {}
    for attempt in tries:
        assert attempt["status"] == 7, attempt   # curl's "connection refused", not a timeout
        by_target.setdefault(attempt["target"], []).append(attempt["seconds"])
    assert len(by_target) == 3
    assert all(statistics.median(seconds) < 0.5 for seconds in by_target.values()), by_target


def test_c35_source_ranges_turn_the_other_client_away(results, status):
    facts = results["source-ranges", "one-client-admitted"]["facts"]
    assert facts["admitted_source"] == f"{status['client_ip']}/32" and facts["other_ip"] != status["client_ip"]
    assert (facts["admitted_answered"], facts["other_answered"], facts["node_port_answered"]) == (3, 0, 3)


def test_c36_no_node_port_yet_the_address_answers(results):
    assert results["no-node-ports", "no-node-port"]["facts"]["value"] is None
    assert results["no-node-ports", "address-still-answers"]["facts"]["answered_targets"] == 1


def test_c37_only_pods_reach_an_address_no_node_announces(results, status):
    facts = results["vip-shortcut", "pod-reaches-unannounced"]["facts"]
    first, last = (int(ipaddress.ip_address(a)) for a in status["pool"].split("-"))
    assert first <= int(ipaddress.ip_address(facts["address"])) <= last
    assert facts["pod_answered"] == facts["tries"] and facts["outside_answered"] == 0
    assert ":" not in facts["arp"] and len(facts["captured"]) == 3 and all(facts["captured"].values())


def test_html_report_draws_every_probe_on_the_recorded_cluster(metallb_all):
    _, data, path = metallb_all
    page = path.with_suffix(".html").read_text()
    assert set(data["topology"]) == {r["lab"] for r in data["results"]}
    assert "records no topology" not in page
    for r in data["results"]:
        assert f'data-probe="{r["lab"]}/{r["probe"]}"' in page
    for node in data["topology"]["loadbalancer"]["nodes"]:
        assert node["name"] in page and node["ip"] in page
    attempts = next(r for r in data["results"] if r["probe"] == "holder-fails")["facts"]["attempts"]
    assert attempts and attempts[-1]["answered"]
    shot = path.with_suffix(".png")
    check_report(path.with_suffix(".html"), data, shot)
    print(f"\nHTML report {path.with_suffix('.html')} ({path.with_suffix('.html').stat().st_size} bytes), "
          f"screenshot {shot}")


def test_flipping_the_live_policy_changes_what_the_backend_sees(results):
    facts = results["traffic-policy", "flip-the-live-policy"]["facts"]
    assert (facts["before_policy"], facts["before_source"]) == ("Cluster", "node")
    assert (facts["after_policy"], facts["after_source"]) == ("Local", "client")


def test_diagnostics_bundle_from_the_live_cluster(cluster, results, tmp_path):
    from svclab import lifecycle
    from svclab.config import load_settings
    from svclab.diagnostics import collect
    from svclab.ui import UI

    env = lifecycle.connect(load_settings({"cluster_name": cluster}), UI(quiet=True))
    folder = collect(env, tmp_path)
    assert not (folder / "errors.txt").exists(), (folder / "errors.txt").read_text()
    events = json.loads((folder / "svclab-loadbalancer" / "events.json").read_text())
    assert events["items"]
    assert (folder / "svclab-loadbalancer" / "endpointslices.json").exists()
    assert any(p.name.startswith("speaker") for p in (folder / "metallb-system" / "logs").iterdir())
    pools = {p["metadata"]["name"]: p for p in
             json.loads((folder / "metallb-system" / "ipaddresspools.json").read_text())["items"]}
    assert pools["svclab"]["spec"]["addresses"] == [json.loads(
        svclab("cluster.status", "--name", cluster, "--json").stdout)["pool"]]
    assert (folder / "kind-logs").is_dir() and any((folder / "kind-logs").iterdir())
