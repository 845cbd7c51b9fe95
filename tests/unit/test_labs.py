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
    assert probe.expectation("metallb").given() == {"answers": True}
    assert probe.expectation("none").given() == {"answers": False}


def test_unknown_lab():
    with pytest.raises(UsageError, match="unknown lab 'nope'"):
        labs.load_lab("nope")


def test_disruptive_labs_run_last():
    ids = labs.available_labs()
    flags = [labs.load_lab(i).disruptive for i in ids]
    assert flags == sorted(flags) and labs.load_lab("failover").disruptive and not flags[0]


def test_ingress_lab_refuses_a_cluster_without_an_ingress_controller():
    import types

    from svclab.config import Settings

    lab = labs.load_lab("ingress")
    assert lab.needs_ingress and not labs.load_lab("nodeport").needs_ingress
    env = types.SimpleNamespace(settings=Settings(ingress="none"))
    with pytest.raises(UsageError, match="needs the cluster's Ingress controller"):
        labs.start_lab(env, lab)
