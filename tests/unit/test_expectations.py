import pytest

from svclab.errors import UsageError
from svclab.probes import NodeInfo, check_expectation, describe_expectation


def http_facts(**overrides):
    facts = {"targets": 3, "answered_targets": 3, "silent_targets": 0, "responses": 6, "errors": 0,
             "backends": ["a", "b"], "backend_nodes": ["w1", "w2"], "source_kinds": []}
    return facts | overrides


def test_answers_all_targets():
    assert check_expectation({"answers": True}, http_facts()) == []
    assert check_expectation({"answers": True}, http_facts(answered_targets=2, silent_targets=1)) == [
        "1 of 3 targets did not answer every request"]
    assert check_expectation({"answers": True}, http_facts(errors=1)) != []
    assert check_expectation({"answers": True}, http_facts(targets=0, answered_targets=0)) != []


def test_no_answer_means_no_response_at_all():
    silent = http_facts(answered_targets=0, silent_targets=3, responses=0, errors=3)
    assert check_expectation({"answers": False}, silent) == []
    assert check_expectation({"answers": False}, http_facts()) == ["3 of 3 targets answered"]


def test_spread_over_backends_and_nodes():
    expect = {"min_backends": 2, "min_backend_nodes": 2}
    assert check_expectation(expect, http_facts()) == []
    assert check_expectation(expect, http_facts(backend_nodes=["w1"])) == ["backends on 1 nodes"]


def test_source_address_kinds():
    assert check_expectation({"source": "client"}, http_facts(source_kinds=["client"] * 3)) == []
    assert check_expectation({"source": "node"}, http_facts(source_kinds=["node", "client"])) == [
        "source addresses were client, node"]
    assert check_expectation({"source": "node"}, http_facts()) == ["no source address observed"]


def test_field_expectations():
    assert check_expectation({"equals": "ClusterIP"}, {"value": "ClusterIP"}) == []
    assert check_expectation({"equals": "ClusterIP"}, {"value": "NodePort"}) != []
    assert check_expectation({"in_range": [30000, 32767]}, {"value": 31000}) == []
    assert check_expectation({"in_range": [30000, 32767]}, {"value": 80}) != []
    assert check_expectation({"in_range": [30000, 32767]}, {"value": None}) != []
    assert check_expectation({"set": True}, {"value": "10.96.0.10"}) == []
    assert check_expectation({"set": True}, {"value": None}) != []
    assert check_expectation({"set": False}, {"value": None}) == []
    assert check_expectation({"in_pool": True}, {"value": "1.2.3.4", "in_pool": False}) != []


def test_rejection_and_pending():
    assert check_expectation({"message": "already allocated"}, {"message": "port is already allocated"}) == []
    assert check_expectation({"message": "already allocated"}, {"message": None}) == ["the API server accepted it"]
    assert check_expectation({"message": "x"}, {"message": "y"}) == ["rejected with another message"]
    assert check_expectation({"pending": True}, {"pending": True}) == []
    assert check_expectation({"pending": True}, {"pending": False}) == ["an address was assigned"]


def test_dns_resolution():
    assert check_expectation({"resolves_to_cluster_ip": True}, {"value": "10.96.0.5", "cluster_ip": "10.96.0.5"}) == []
    assert check_expectation({"resolves_to_cluster_ip": True}, {"value": None, "cluster_ip": "10.96.0.5"}) != []


def test_unknown_expectation_is_a_usage_error():
    with pytest.raises(UsageError):
        check_expectation({"teleports": True}, {})


def test_descriptions():
    assert describe_expectation({"answers": True, "min_backends": 2}) == "answers, ≥2 backends"
    assert describe_expectation({"pending": True}) == "stays <pending>"
    assert describe_expectation({"in_range": [30000, 32767]}) == "in 30000–32767"


def test_node_owns_its_address_and_pod_gateway():
    node = NodeInfo("w1", "172.18.0.3", "10.244.1.0/24", True)
    assert node.owns("172.18.0.3")
    assert node.owns("10.244.1.1")
    assert not node.owns("10.244.1.7")
    assert not NodeInfo("w2", "172.18.0.4", None, False).owns("10.244.1.1")


def test_policy_flip():
    assert check_expectation({"flips_source": True}, {"before_source": "node", "after_source": "client"}) == []
    assert check_expectation({"flips_source": True}, {"before_source": "node", "after_source": "node"}) == [
        "source stayed node"]
    assert check_expectation({"flips_source": True}, {"before_source": "node", "after_source": None}) == [
        "no source address observed"]


def test_probes_only_target_lab_addresses():
    import types

    import pytest

    from svclab.errors import SvclabError
    from svclab.probes import lab_address

    ctx = types.SimpleNamespace(topology=types.SimpleNamespace(pool=types.SimpleNamespace(subnet="172.18.0.0/16")))
    assert lab_address(ctx, "172.18.255.250") == "172.18.255.250"
    assert lab_address(ctx, "10.96.12.1") == "10.96.12.1"            # a ClusterIP
    assert lab_address(ctx, "echo.svclab-dns.svc.cluster.local", in_cluster=True).startswith("echo.")
    for bad, in_cluster in (("8.8.8.8", False), ("192.168.1.1", True), ("127.0.0.1", False),
                            ("echo.svclab-dns.svc.cluster.local", False), ("example.com", True),
                            ("172.18.0.1; rm -rf /", False)):
        with pytest.raises(SvclabError, match="refusing to probe"):
            lab_address(ctx, bad, in_cluster=in_cluster)
