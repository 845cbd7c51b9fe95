"""The unannounced kind's pure parts: which address svclab writes, what the outside client's
neighbour entry says, and the judge (each expectation able to fail)."""

import types

import pytest

from svclab.errors import SvclabError
from svclab.probes.kinds import unannounced
from svclab.probes.kinds.unannounced import Expect, arp_state, free_address, held_addresses, judge


def _svc(namespace, name, *ips):
    return {"metadata": {"namespace": namespace, "name": name},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def test_the_top_free_address_of_the_pool_is_written():
    pool = ["172.18.255.250", "172.18.255.251", "172.18.255.252"]
    assert free_address(pool, set()) == "172.18.255.252"
    assert free_address(pool, {"172.18.255.252"}) == "172.18.255.251"
    assert free_address(pool, set(pool)) is None


def test_held_addresses_leave_out_the_service_itself_and_services_without_one():
    services = [_svc("a", "one", "172.18.255.250"), _svc("b", "two"), _svc("lab", "echo", "172.18.255.252"),
                {"metadata": {"namespace": "c", "name": "plain"}, "spec": {}}]
    assert held_addresses(services, but="lab/echo") == {"172.18.255.250": "a/one"}


def test_arp_state_names_the_mac_or_the_state():
    assert arp_state("172.18.255.254 dev eth0 lladdr 02:42:ac:12:00:03 REACHABLE\n") == "02:42:ac:12:00:03"
    assert arp_state("172.18.255.254 dev eth0  FAILED\n") == "FAILED"
    assert arp_state("172.18.255.254 dev eth0  INCOMPLETE\n") == "INCOMPLETE"
    assert arp_state("") == "none"


FACTS = {"address": "172.18.255.254", "tries": 4, "pod_answered": 4, "outside_answered": 0, "arp": "FAILED",
         "captured": {"cp": 1, "w1": 1, "w2": 1}}
EXPECT = Expect(pod_answers=True, outside_answers=False, captured_on_every_node=True)


def test_the_shortcut_as_recorded_holds():
    assert judge(FACTS, EXPECT) == []


def test_each_expectation_can_fail():
    assert judge(FACTS | {"pod_answered": 3}, EXPECT) == ["1 of 4 requests from the pod unanswered"]
    assert judge(FACTS | {"outside_answered": 1}, EXPECT) == ["1 of 4 requests from outside answered"]
    assert judge(FACTS | {"captured": {"cp": 1, "w1": 0, "w2": 1}}, EXPECT) == [
        "the address is in the rules of 2 of 3 nodes"]
    assert judge(FACTS | {"captured": {}}, EXPECT) == ["the address is in the rules of 0 of 0 nodes"]
    assert judge(FACTS, Expect(captured_on_every_node=False)) == ["the address is in the rules of cp, w1, w2"]


def test_the_prediction_follows_the_expectation():
    assert EXPECT.prediction().right == "only the pod"
    assert Expect(pod_answers=True, outside_answers=True).prediction().right == "both"
    assert Expect(pod_answers=False, outside_answers=False).prediction().right == "neither"
    assert Expect(captured_on_every_node=True).prediction() is None


def test_only_a_service_of_svclabs_class_is_written():
    """A Service the cluster's implementation serves would get a second, announced address."""
    ctx = types.SimpleNamespace(namespace="lab")
    for spec in ({"type": "LoadBalancer"}, {"type": "NodePort", "loadBalancerClass": unannounced.CLASS}):
        with pytest.raises(SvclabError, match="must be type LoadBalancer with loadBalancerClass svclab.io/unannounced"):
            unannounced._write_address(ctx, {"metadata": {"name": "echo"}, "spec": spec})
