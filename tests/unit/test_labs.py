from pathlib import Path

import pytest

from svclab import labs
from svclab.errors import UsageError


def test_every_lab_definition_loads():
    ids = labs.available_labs()
    assert {"clusterip", "nodeport", "loadbalancer", "pending"} <= set(ids)
    for lab_id in ids:
        lab = labs.load_lab(lab_id)
        assert lab.probes, lab_id
        assert lab.namespace == f"svclab-{lab_id}"
        for probe in lab.probes:
            assert probe.claim in lab.claims, (lab_id, probe.id)


def test_core_claims_are_covered():
    covered = {p.claim for lab_id in labs.available_labs() for p in labs.load_lab(lab_id).probes}
    assert {f"C{i}" for i in range(1, 14)} | {"C15"} <= covered


def test_provider_specific_expectation():
    lab = labs.load_lab("loadbalancer")
    probe = next(p for p in lab.probes if p.id == "port-80-at-external-address")
    assert probe.expectation("metallb") == {"answers": True}
    assert probe.expectation("none") == {"answers": False}


def test_unknown_lab():
    with pytest.raises(UsageError, match="unknown lab 'nope'"):
        labs.load_lab("nope")


@pytest.mark.parametrize("data, message", [
    ([], "expected a mapping"),
    ({"probes": []}, "missing 'title'"),
    ({"title": "t", "probes": [{"kind": "http"}]}, "has no id"),
    ({"title": "t", "probes": [{"id": "a", "kind": "telepathy", "expect": {"x": 1}}]}, "unknown kind"),
    ({"title": "t", "probes": [{"id": "a", "kind": "http", "via": "dns", "expect": {"answers": True}}]},
     "missing 'service'"),
    ({"title": "t", "probes": [{"id": "a", "kind": "http", "service": "s", "via": "carrier-pigeon",
                                "expect": {"answers": True}}]}, "via must be one of"),
    ({"title": "t", "probes": [{"id": "a", "kind": "pending", "service": "s"}]}, "has no expectation"),
    ({"title": "t", "probes": [{"id": "a", "kind": "pending", "service": "s", "expect": {"bogus": 1}}]},
     "unknown expectation"),
    ({"title": "t", "probes": [{"id": "a", "kind": "pending", "service": "s", "expect": {"pending": True}},
                               {"id": "a", "kind": "pending", "service": "s", "expect": {"pending": True}}]},
     "used twice"),
])
def test_invalid_lab_definitions(data, message):
    with pytest.raises(UsageError, match=message):
        labs.parse_lab("broken", data, Path("."))


def test_only_convergent_observations_settle():
    assert labs.settles({"answers": True, "min_backends": 2})
    assert labs.settles({"healthy_where_backends": True})
    assert not labs.settles({"answers": False})
    assert not labs.settles({"pending": True})
    assert not labs.settles({"message": "already allocated"})


def test_disruptive_labs_run_last():
    ids = labs.available_labs()
    assert ids[-1] == "failover" and labs.load_lab("failover").disruptive
    assert not any(labs.load_lab(i).disruptive for i in ids[:-1])


def test_ingress_lab_refuses_a_cluster_without_an_ingress_controller():
    import types

    from svclab.config import Settings

    lab = labs.load_lab("ingress")
    assert lab.needs_ingress and not labs.load_lab("nodeport").needs_ingress
    env = types.SimpleNamespace(settings=Settings(ingress="none"))
    with pytest.raises(UsageError, match="needs the cluster's Ingress controller"):
        labs.start_lab(env, lab)
