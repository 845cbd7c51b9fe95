"""The bgp kind and the edge it needs, without a cluster: the router's bgpd configuration (and
bgpd's own check of it on the pinned FRR image, when docker is here), the BGP pool's block, the
MetalLB objects, and the judge on the facts of a real `lab.bgp` run on MetalLB
(recorded_facts.json), then on those facts changed the way a misbehaving network would change
them: each expectation must be able to fail."""

import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from svclab import labs, site
from svclab.probes import edge
from svclab.probes.base import Prediction
from svclab.errors import SvclabError
from svclab.probes.edge import POOL_SIZE, frr_bgpd_config, metallb_objects, pool_block
from svclab.probes.kinds import bgp
from svclab.probes.kinds.bgp import Expect, judge
from svclab.providers.metallb import NAMESPACE

SAMPLES = Path(__file__).parent / "samples"
RECORDED = json.loads((SAMPLES / "recorded_facts.json").read_text())["providers"]
CLIENT = "172.19.0.3"          # the outside client on the edge network, in the recorded run


def _facts(probe: str) -> dict:
    return next(r["facts"] for r in RECORDED["metallb"] if r["lab"] == "bgp" and r["probe"] == probe)


# ------------------------------------------------------------------ the router's configuration

BGPD_LINES = [
    "frr defaults traditional",
    "hostname svclab-router",
    "log stdout informational",
    "router bgp 64500",
    " no bgp ebgp-requires-policy",
    " neighbor nodes peer-group",
    " neighbor nodes remote-as 64501",
    " neighbor nodes timers 2 6",
    " bgp listen range 172.18.0.0/16 peer-group nodes",
    " address-family ipv4 unicast",
    "  maximum-paths 16",
    " exit-address-family",
]


def test_bgpd_config_lines():
    config = frr_bgpd_config("172.18.0.0/16")
    assert config.split("\n") == BGPD_LINES + [""]
    assert (edge.ROUTER_ASN, edge.NODE_ASN, edge.KEEPALIVE_SECONDS, edge.HOLD_SECONDS) == (64500, 64501, 2, 6)


def test_bgpd_config_listens_on_the_subnet_it_is_given():
    config = frr_bgpd_config("192.168.16.0/20").splitlines()
    assert [line for line in config if "listen range" in line] == [" bgp listen range 192.168.16.0/20 peer-group nodes"]
    assert [a for a, b in zip(BGPD_LINES, config) if a != b] == [" bgp listen range 172.18.0.0/16 peer-group nodes"]


def _bgpd_check(config: str) -> subprocess.CompletedProcess:
    # The pinned image has no cat: sh's read and printf write the file. bgpd needs the capabilities
    # the router runs with (NET_ADMIN, SYS_ADMIN) to start at all, -C reads the file and exits.
    return subprocess.run(["docker", "run", "--rm", "-i", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
                           "--entrypoint", "/bin/sh", site.frr_image(), "-c",
                           'while IFS= read -r l; do printf "%s\\n" "$l"; done > /tmp/b.conf'
                           " && /usr/lib/frr/bgpd -C -f /tmp/b.conf"],
                          input=config, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker command")
def test_bgpd_itself_accepts_the_config():
    """bgpd -C exits 0 whatever the file holds (FRR's dry run reads the file, then exit(0)), but
    it logs each line it refuses: the check is that it says nothing at all."""
    done = _bgpd_check(frr_bgpd_config("172.18.0.0/16"))
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    for broken, line in [(frr_bgpd_config("172.18.0.0/16").replace("timers 2 6", "timers 2 1"), 8),
                         (frr_bgpd_config("172.18.0.0/33"), 9),
                         (frr_bgpd_config("172.18.0.0/16").replace("maximum-paths", "maximum-pathz"), 11)]:
        refused = _bgpd_check(broken)
        assert f"on config line {line}:" in refused.stdout + refused.stderr, (line, refused.stdout + refused.stderr)


# ------------------------------------------------------------------ the BGP pool

@pytest.mark.parametrize("subnet, block", [
    ("172.19.0.0/16", "172.19.255.240/29"),
    ("192.168.16.0/20", "192.168.31.240/29"),
    ("172.20.0.0/24", "172.20.0.240/29"),
])
def test_pool_block_is_the_block_below_the_last(subnet, block):
    assert pool_block(subnet) == block


@pytest.mark.parametrize("subnet", ["172.19.0.0/16", "192.168.16.0/20", "172.20.0.0/24", "10.10.0.0/22"])
def test_pool_block_holds_pool_size_addresses_short_of_the_broadcast(subnet):
    net, block = ipaddress.ip_network(subnet), ipaddress.ip_network(pool_block(subnet))
    assert POOL_SIZE == 8 and block.num_addresses == POOL_SIZE
    assert block.subnet_of(net)
    assert net.broadcast_address not in block
    assert net.network_address not in block and net.network_address + 1 not in block   # Docker's gateway
    # Right below the last block of POOL_SIZE, which holds the broadcast address.
    assert block.broadcast_address + POOL_SIZE == net.broadcast_address


@pytest.mark.parametrize("subnet", ["172.20.0.0/28", "172.20.0.0/29", "172.20.0.0/30"])
def test_pool_block_refuses_a_network_too_small(subnet):
    with pytest.raises(SvclabError, match="too small for a BGP pool"):
        pool_block(subnet)


def test_the_recorded_addresses_came_from_the_pool():
    pool = ipaddress.ip_network(pool_block("172.19.0.0/16"))
    for probe in ("router-learns-the-address", "local-announces-pod-nodes", "node-withdrawn"):
        facts = _facts(probe)
        assert ipaddress.ip_address(facts["address"]) in pool
        assert ipaddress.ip_address(facts["client_ip"]) not in pool      # Docker hands out from the bottom


# ------------------------------------------------------------------ MetalLB's objects

def test_metallb_objects():
    pool, peer_ip = "172.19.255.240/29", "172.18.0.9"
    objects = {o["kind"]: o for o in metallb_objects(pool, peer_ip)}
    assert list(objects) == ["IPAddressPool", "BGPAdvertisement", "BGPPeer"]
    assert NAMESPACE == "metallb-system"
    assert {o["metadata"]["namespace"] for o in objects.values()} == {NAMESPACE}
    assert objects["IPAddressPool"] == {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                                        "metadata": {"name": "svclab-bgp", "namespace": NAMESPACE},
                                        "spec": {"addresses": [pool], "autoAssign": False}}
    assert objects["BGPAdvertisement"]["spec"] == {"ipAddressPools": ["svclab-bgp"]}
    assert objects["BGPAdvertisement"]["metadata"]["name"] == edge.BGP_POOL == "svclab-bgp"
    peer = objects["BGPPeer"]
    assert (peer["apiVersion"], peer["metadata"]["name"]) == ("metallb.io/v1beta2", "svclab-router")
    # MetalLB's native mode refuses a keepalive time: it takes a third of the hold time, 2 s, the
    # router's own keepalive.
    assert peer["spec"] == {"myASN": 64501, "peerASN": 64500, "peerAddress": peer_ip, "holdTime": "6s"}
    assert "keepaliveTime" not in peer["spec"]


def test_metallb_and_the_router_agree():
    peer = metallb_objects("172.19.255.240/29", "172.18.0.9")[2]["spec"]
    config = frr_bgpd_config("172.18.0.0/16").splitlines()
    assert f"router bgp {peer['peerASN']}" in config
    assert f" neighbor nodes remote-as {peer['myASN']}" in config
    assert f" neighbor nodes timers {edge.KEEPALIVE_SECONDS} {peer['holdTime'].removesuffix('s')}" in config


# ------------------------------------------------------------------ the judge

def test_recorded_runs_pass_their_labs_expectations():
    for probe in labs.load_lab("bgp").probes:
        assert judge(_facts(probe.id), probe.expectation("metallb")) == [], probe.id


def test_peers_all():
    facts = _facts("router-learns-the-address")
    expect = Expect(peers="all")
    # The control plane's speaker has a session too; it only announces nothing.
    assert facts["peers"]["dev-control-plane"] == "Established" and facts["eligible_nodes"] == ["dev-worker",
                                                                                                 "dev-worker2"]
    assert judge(facts, expect) == []
    assert judge(facts | {"peers": facts["peers"] | {"dev-worker2": "Active"}}, expect) == [
        "no established session with dev-worker2"]
    assert judge(facts | {"peers": {"dev-control-plane": "Established"}}, expect) == [
        "no established session with dev-worker, dev-worker2"]
    assert judge(facts | {"peers": {}}, expect) == ["no established session with dev-worker, dev-worker2"]
    assert judge(facts | {"eligible_nodes": []}, expect) == ["no established session with any node"]


def test_peers_none():
    facts = _facts("router-learns-the-address")
    expect = Expect(peers="none")
    # kube-vip and none speak no BGP: the router sees no session at all.
    silent = facts | {"speakers": False, "peers": {}, "next_hops": []}
    assert judge(silent, expect) == []
    assert judge(facts, expect) == ["3 BGP sessions"]
    # A session still trying counts as well.
    assert judge(silent | {"peers": {"172.18.0.2": "Connect"}}, expect) == ["1 BGP session"]


def test_next_hops_all():
    facts = _facts("router-learns-the-address")
    expect = Expect(next_hops="all")
    assert judge(facts, expect) == []
    assert judge(facts | {"next_hops": ["dev-worker"]}, expect) == ["next hops dev-worker, not dev-worker, dev-worker2"]
    assert judge(facts | {"next_hops": []}, expect) == ["next hops none, not dev-worker, dev-worker2"]
    # The control plane announcing although it carries the exclusion label.
    assert judge(facts | {"next_hops": ["dev-control-plane", "dev-worker", "dev-worker2"]}, expect) == [
        "next hops dev-control-plane, dev-worker, dev-worker2, not dev-worker, dev-worker2"]
    assert judge(facts | {"eligible_nodes": [], "next_hops": []}, expect) == ["next hops none, not none"]


def test_next_hops_backends():
    local, cluster = _facts("local-announces-pod-nodes"), _facts("router-learns-the-address")
    expect = Expect(next_hops="backends")
    assert local["next_hops"] == local["backend_nodes"] == ["dev-worker"]
    assert judge(local, expect) == []
    # Under policy Cluster every node announces: not only the pod's.
    assert judge(cluster, expect) == ["next hops dev-worker, dev-worker2, not dev-worker"]
    assert judge(local | {"next_hops": []}, expect) == ["next hops none, not dev-worker"]
    # The pod on the excluded control plane: nobody may announce it.
    assert judge(local | {"backend_nodes": ["dev-control-plane"], "next_hops": []}, expect) == [
        "next hops none, not none"]


def test_entry_nodes_at_least():
    facts = _facts("router-learns-the-address")
    assert judge(facts, Expect(entry_nodes_at_least=2)) == []
    # The router hashing every connection onto one path.
    assert judge(facts | {"entry_nodes": ["dev-worker2"]}, Expect(entry_nodes_at_least=2)) == [
        "entered through 1 node(s)"]
    assert judge(facts, Expect(entry_nodes_at_least=3)) == ["entered through 2 node(s)"]
    assert judge(_facts("local-announces-pod-nodes"), Expect(entry_nodes_at_least=1)) == ["entered through 0 node(s)"]


def test_source_node():
    facts = _facts("router-learns-the-address")
    expect = Expect(source="node")
    assert CLIENT not in facts["sources"] and facts["client_ip"] == CLIENT
    assert judge(facts, expect) == []
    kept = facts | {"sources": facts["sources"][:12] + [CLIENT] * 4}
    assert judge(kept, expect) == ["4 of 16 answers saw the client"]
    assert judge(facts | {"sources": [], "answered": 0}, expect) == ["no answer"]


def test_source_client():
    facts = _facts("local-announces-pod-nodes")
    expect = Expect(source="client")
    assert set(facts["sources"]) == {CLIENT}
    assert judge(facts, expect) == []
    # Some connections entering through a node without the pod (and masqueraded there).
    hidden = facts | {"sources": ["172.18.0.3", "10.244.2.1"] + facts["sources"][2:]}
    assert judge(hidden, expect) == ["2 of 16 answers saw another source"]
    assert judge(_facts("router-learns-the-address"), expect) == ["16 of 16 answers saw another source"]
    assert judge(facts | {"sources": []}, expect) == ["no answer"]


def test_withdrawn_within():
    facts = _facts("node-withdrawn")
    expect = Expect(withdrawn_within=15)
    assert (facts["cut_node"], facts["withdrawn_after"]) == ("dev-worker2", 4.91)
    assert judge(facts, expect) == []
    assert judge(facts | {"withdrawn_after": 15.0}, expect) == []
    assert judge(facts | {"withdrawn_after": 15.04}, expect) == ["withdrawn after 15.0s"]
    assert judge(facts, Expect(withdrawn_within=4)) == ["withdrawn after 4.9s"]
    # The router keeping the dead node's path (a hold time of 0: no keepalives checked).
    assert judge(facts | {"withdrawn_after": None}, expect) == ["dev-worker2's path was never withdrawn"]
    unnamed = {k: v for k, v in facts.items() if k not in ("cut_node", "withdrawn_after")}
    assert judge(unnamed, expect) == ["the cut node's path was never withdrawn"]


def test_answers_after():
    facts = _facts("node-withdrawn")
    assert (facts["answered_after"], facts["tried_after"]) == (8, 8)
    assert judge(facts, Expect(answers_after=True)) == []
    assert judge(facts | {"answered_after": 5}, Expect(answers_after=True)) == [
        "3 of 8 requests after the withdrawal unanswered"]
    assert judge(facts | {"answered_after": 0}, Expect(answers_after=True)) == [
        "8 of 8 requests after the withdrawal unanswered"]
    assert judge(facts | {"answered_after": 0}, Expect(answers_after=False)) == []
    assert judge(facts, Expect(answers_after=False)) == ["8 of 8 requests after the withdrawal answered"]
    assert judge(facts | {"answered_after": 1}, Expect(answers_after=False)) == [
        "1 of 8 requests after the withdrawal answered"]


def test_answers_after_without_requests():
    facts = {k: v for k, v in _facts("node-withdrawn").items() if k not in ("answered_after", "tried_after")}
    assert judge(facts, Expect(answers_after=True)) == ["0 of 0 requests after the withdrawal unanswered"]
    assert judge(facts, Expect(answers_after=False)) == []


def test_the_labs_cut_off_expectation_checks_every_key():
    probe = next(p for p in labs.load_lab("bgp").probes if p.id == "node-withdrawn")
    expect = probe.expectation("metallb")
    facts = _facts("node-withdrawn")
    assert judge(facts, expect) == []
    assert judge(facts | {"withdrawn_after": 20.5, "answered_after": 6}, expect) == [
        "withdrawn after 20.5s", "2 of 8 requests after the withdrawal unanswered"]


def test_the_labs_expectations_check_every_key():
    probe = next(p for p in labs.load_lab("bgp").probes if p.id == "router-learns-the-address")
    expect = probe.expectation("metallb")
    facts = _facts("router-learns-the-address")
    # A router that learnt nothing: the sessions down, no route, the requests unanswered.
    down = facts | {"peers": {n: "Active" for n in facts["peers"]}, "next_hops": [], "entry_nodes": [],
                    "sources": [], "answered": 0}
    assert judge(down, expect) == ["no established session with dev-worker, dev-worker2",
                                   "next hops none, not dev-worker, dev-worker2",
                                   "16 of 16 requests through the router unanswered", "entered through 0 node(s)",
                                   "no answer"]
    local = next(p for p in labs.load_lab("bgp").probes if p.id == "local-announces-pod-nodes")
    assert judge(facts, local.expectation("metallb")) == ["next hops dev-worker, dev-worker2, not dev-worker",
                                                          "16 of 16 answers saw another source"]


@pytest.mark.parametrize("provider", ["kube-vip", "none"])
def test_without_a_bgp_speaker_every_probe_expects_no_session(provider):
    silent = {"eligible_nodes": ["dev-worker", "dev-worker2"], "backend_nodes": ["dev-worker"],
              "client_ip": CLIENT, "speakers": False, "peers": {}, "address": None, "next_hops": []}
    for probe in labs.load_lab("bgp").probes:
        expect = probe.expectation(provider)
        assert expect == Expect(peers="none")
        assert judge(silent, expect) == []
        assert judge(_facts(probe.id), expect) == ["3 BGP sessions"]


# ------------------------------------------------------------------ what the expectations say, the spec

@pytest.mark.parametrize("expect, text", [
    (Expect(peers="all", next_hops="all", entry_nodes_at_least=2, source="node"),
     "a session with every node, a next hop per node, enters through ≥2 nodes, source = a node address"),
    (Expect(peers="none"), "no BGP session"),
    (Expect(next_hops="backends", source="client"), "next hops = the pods' nodes, source = client address"),
    (Expect(withdrawn_within=15, answers_after=True), "path withdrawn within 15s, answers after the withdrawal"),
    (Expect(withdrawn_within=2.5, answers_after=False), "path withdrawn within 2.5s, no answer after"),
])
def test_descriptions(expect, text):
    assert expect.describe() == text


def test_predictions_derive_from_the_expectation():
    assert Expect(peers="all", next_hops="all").prediction() == Prediction(("every node", "only the pods' nodes"),
                                                                           "every node")
    assert Expect(peers="all", next_hops="backends").prediction().right == "only the pods' nodes"
    assert Expect(peers="none").prediction() == Prediction(("routes", "no route"), "no route")
    assert Expect(peers="all").prediction() is None
    assert Expect(withdrawn_within=15, answers_after=True).prediction() is None


def test_only_sessions_and_routes_settle():
    assert Expect(peers="all", next_hops="all", entry_nodes_at_least=2, source="node").settles
    assert Expect(next_hops="backends").settles
    assert not Expect(peers="none").settles              # an expected absence is seen once
    assert not Expect(withdrawn_within=15).settles
    assert not Expect(answers_after=True).settles
    assert not Expect(peers="all", answers_after=True).settles


def _spec(**keys):
    return bgp.Spec.model_validate({"id": "router-learns-the-address", "claim": "C22", "kind": "bgp",
                                    "service": "web-cluster", "expect": {"peers": "all"}} | keys)


def test_only_a_cut_off_changes_the_cluster():
    assert _spec().changes_cluster() is False
    assert _spec(cut_off=True).changes_cluster() is True
    assert [p.changes_cluster() for p in labs.load_lab("bgp").probes] == [False, False, True]


@pytest.mark.parametrize("key, value", [("withdrawn_within", 15), ("answers_after", True)])
def test_the_cut_off_keys_need_a_cut(key, value):
    with pytest.raises(ValidationError, match=f"expect.{key} needs cut_off: true"):
        _spec(expect={key: value})
    with pytest.raises(ValidationError, match=f"expect.{key} needs cut_off: true"):
        _spec(expect={key: value}, cut_off=False)
    # Under one provider only, as well.
    with pytest.raises(ValidationError, match=f"expect.{key} needs cut_off: true"):
        _spec(expect_by_provider={"metallb": {key: value}, "kube-vip": {"peers": "none"}})
    assert _spec(expect={key: value}, cut_off=True).expectation("metallb") == Expect(**{key: value})
    assert _spec(expect_by_provider={"metallb": {key: value}, "kube-vip": {"peers": "none"}},
                 cut_off=True).expectation("kube-vip") == Expect(peers="none")


def test_spec_defaults_and_bounds():
    spec = _spec()
    assert (spec.tries, spec.cut_off, spec.within, spec.path) == (16, False, 30, "router-learns-the-address")
    assert spec.expectation("metallb") == Expect(peers="all")
    for bad in ({"tries": 0}, {"within": 0}, {"within": 121}, {"expect": {"entry_nodes_at_least": 0}},
                {"expect": {"withdrawn_within": 0}, "cut_off": True}, {"expect": {"peers": "some"}},
                {"expect": {"next_hops": "pods"}}):
        with pytest.raises(ValidationError):
            _spec(**bad)
