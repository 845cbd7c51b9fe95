"""The haproxy kind, without a cluster: the configuration svclab gives HAProxy (and HAProxy's own
check of it, when docker is here), HAProxy's stats CSV as a real HAProxy 2.6 wrote it
(tests/unit/samples/haproxy_stats_local.csv: policy Local, the pod on dev-worker), and the judge on
the facts of a real `lab.external-lb` run (recorded_facts.json), then on those facts changed the
way a misbehaving network would change them: each expectation must be able to fail."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from svclab import labs, site
from svclab.probes import NodeInfo, Topology
from svclab.probes.kinds import haproxy
from svclab.probes.kinds.haproxy import Expect, haproxy_config, judge, parse_stats, settled

SAMPLES = Path(__file__).parent / "samples"
STATS_CSV = (SAMPLES / "haproxy_stats_local.csv").read_text()
RECORDED = json.loads((SAMPLES / "recorded_facts.json").read_text())["providers"]
NODES = [("dev-control-plane", "172.18.0.3"), ("dev-worker", "172.18.0.2"), ("dev-worker2", "172.18.0.4")]


def _facts(probe: str) -> dict:
    return next(r["facts"] for r in RECORDED["metallb"] if r["lab"] == "external-lb" and r["probe"] == probe)


def _sections(config: str) -> dict[str, list[str]]:
    """The configuration's sections (an unindented line) with their indented lines, stripped."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in config.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            sections[current].append(line.strip())
        else:
            current = line
            sections[current] = []
    return sections


# ------------------------------------------------------------------ the configuration

def test_config_one_checked_server_per_node():
    config = _sections(haproxy_config(NODES, 30599, 10256, "/healthz"))
    backend = config["backend nodes"]
    assert [line for line in backend if line.startswith("server ")] == [
        "server dev-control-plane 172.18.0.3:30599 check port 10256 inter 1000ms fall 2 rise 2",
        "server dev-worker 172.18.0.2:30599 check port 10256 inter 1000ms fall 2 rise 2",
        "server dev-worker2 172.18.0.4:30599 check port 10256 inter 1000ms fall 2 rise 2",
    ]
    assert "option httpchk GET /healthz" in backend
    assert "http-check expect status 200" in backend
    assert "balance roundrobin" in backend


def test_config_under_policy_local_checks_the_health_check_node_port():
    backend = _sections(haproxy_config(NODES[1:2], 30559, 30998, "/"))["backend nodes"]
    assert [line for line in backend if line.startswith("server ")] == [
        "server dev-worker 172.18.0.2:30559 check port 30998 inter 1000ms fall 2 rise 2"]
    assert "option httpchk GET /" in backend


def test_config_frontend_stats_and_retries():
    config = _sections(haproxy_config(NODES, 30599, 10256, "/healthz"))
    assert list(config) == ["global", "defaults", "frontend service", "backend nodes", "listen stats"]
    assert config["frontend service"] == [f"bind :{haproxy.FRONTEND_PORT}", "default_backend nodes"]
    assert haproxy.FRONTEND_PORT == 8080
    assert config["listen stats"] == [f"bind :{haproxy.STATS_PORT}", "stats enable", "stats uri /stats"]
    assert haproxy.STATS_PORT == 8404
    # A connection refused or timed out is retried on another node, not handed to the client.
    assert "retries 2" in config["defaults"]
    assert "option redispatch 1" in config["defaults"]
    assert "mode http" in config["defaults"]


def test_config_backend_is_the_proxy_parse_stats_reads():
    config = _sections(haproxy_config(NODES, 30599, 10256, "/healthz"))
    assert "backend nodes" in config   # parse_stats keeps the rows of proxy "nodes"
    renamed = STATS_CSV.replace("\nnodes,", "\nservers,")
    assert parse_stats(STATS_CSV) and parse_stats(renamed) == {}


def test_config_without_servers_has_an_empty_backend():
    assert [line for line in _sections(haproxy_config([], 30599, 10256, "/healthz"))["backend nodes"]
            if line.startswith("server ")] == []


def _haproxy_check(config: str) -> subprocess.CompletedProcess:
    # The pinned image runs haproxy itself (no shell inside): it reads the configuration on stdin,
    # as the user svclab runs it as.
    return subprocess.run(["docker", "run", "--rm", "-i", "--user", "65534:65534", site.haproxy_image(),
                           "-c", "-f", "/dev/stdin"],
                          input=config, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker command")
def test_haproxy_itself_accepts_the_config():
    config = haproxy_config(NODES, 30599, 10256, "/healthz")
    done = _haproxy_check(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr
    broken = _haproxy_check(config.replace("inter 1000ms", "inter 1000xs", 1))
    assert broken.returncode != 0, broken.stdout + broken.stderr


# ------------------------------------------------------------------ the stats

def test_parse_stats_of_a_real_haproxy():
    assert parse_stats(STATS_CSV) == {
        "dev-control-plane": {"status": "DOWN", "check": "L7STS 503", "sessions": "0"},
        "dev-worker": {"status": "UP", "check": "L7OK 200", "sessions": "24"},
        "dev-worker2": {"status": "DOWN", "check": "L7STS 503", "sessions": "0"},
    }


def test_parse_stats_keeps_only_the_nodes_servers():
    rows = [line.split(",")[:2] for line in STATS_CSV.splitlines()[1:]]
    assert ["nodes", "BACKEND"] in rows and ["service", "FRONTEND"] in rows and ["stats", "FRONTEND"] in rows
    assert set(parse_stats(STATS_CSV)) == {"dev-control-plane", "dev-worker", "dev-worker2"}
    # A server of another proxy is not one of the nodes.
    other = STATS_CSV + STATS_CSV.splitlines()[3].replace("nodes,dev-worker,", "stats,dev-worker3,", 1) + "\n"
    assert set(parse_stats(other)) == {"dev-control-plane", "dev-worker", "dev-worker2"}


def test_parse_stats_of_nothing():
    assert parse_stats("") == {}


def test_settled_on_plain_checked_states():
    servers = parse_stats(STATS_CSV)
    assert settled(servers)
    assert settled({"n": {"status": "UP", "check": "L7OK 200", "sessions": "0"}})
    assert settled({"n": {"status": "DOWN", "check": "L4TOUT", "sessions": "0"}})


@pytest.mark.parametrize("change", [
    {"status": "UP 1/2"},      # going down: one more failed check
    {"status": "DOWN 1/2"},    # coming up: one more passed check
    {"check": ""},             # not checked yet
])
def test_not_settled_on_the_way(change):
    servers = parse_stats(STATS_CSV)
    assert not settled(servers | {"dev-worker2": servers["dev-worker2"] | change})


def test_not_settled_without_servers():
    assert not settled({})


def test_a_server_on_its_way_down_as_haproxy_writes_it():
    going = STATS_CSV.replace("nodes,dev-worker,0,0,0,1,,24,2160,3384,,0,,0,0,0,0,UP,",
                              "nodes,dev-worker,0,0,0,1,,24,2160,3384,,0,,0,0,0,0,UP 1/2,")
    assert going != STATS_CSV
    assert parse_stats(going)["dev-worker"]["status"] == "UP 1/2"
    assert not settled(parse_stats(going))


# ------------------------------------------------------------------ the judge

def test_up_all():
    facts = _facts("haproxy-in-front")
    expect = Expect(up="all")
    assert judge(facts, expect) == []
    assert judge(facts | {"status": facts["status"] | {"dev-worker2": "DOWN"}}, expect) == ["dev-worker2 is DOWN"]
    assert judge(facts | {"status": facts["status"] | {"dev-worker": "UP 1/2"}}, expect) == ["dev-worker is UP 1/2"]
    assert judge(facts | {"status": {}}, expect) == ["HAProxy reported no servers"]


def test_up_backends():
    facts = _facts("haproxy-checks-local")
    expect = Expect(up="backends")
    assert facts["backend_nodes"] == ["dev-worker"]
    assert judge(facts, expect) == []
    # A node without the pod kept UP (its health check answered 200), or the pod's node taken out.
    assert judge(facts | {"status": facts["status"] | {"dev-worker2": "UP"}}, expect) == ["dev-worker2 is UP"]
    assert judge(facts | {"status": facts["status"] | {"dev-worker": "DOWN"}}, expect) == ["dev-worker is DOWN"]
    assert judge(_facts("haproxy-in-front"), expect) == ["dev-control-plane is UP", "dev-worker2 is UP"]
    assert judge(facts | {"status": {}}, expect) == ["HAProxy reported no servers"]


def test_up_backends_from_the_topology_when_the_facts_have_none():
    facts = {k: v for k, v in _facts("haproxy-checks-local").items() if k != "backend_nodes"}
    topology = Topology(nodes=[NodeInfo(n, ip, None, n == "dev-worker") for n, ip in NODES],
                        pod_nodes={"echo-5ffbc477bd-nxh4d": "dev-worker"},
                        client_ip="172.18.255.254", client_pod_ip="10.244.1.9")
    assert judge(facts, Expect(up="backends"), topology) == []
    elsewhere = Topology(nodes=topology.nodes, pod_nodes={"echo-5ffbc477bd-nxh4d": "dev-worker2"},
                         client_ip=topology.client_ip, client_pod_ip=topology.client_pod_ip)
    assert judge(facts, Expect(up="backends"), elsewhere) == ["dev-worker is UP", "dev-worker2 is DOWN"]


def test_up_from_the_real_stats():
    status = {node: s["status"] for node, s in parse_stats(STATS_CSV).items()}
    facts = {"status": status, "backend_nodes": ["dev-worker"]}
    assert judge(facts, Expect(up="backends")) == []
    assert judge(facts, Expect(up="all")) == ["dev-control-plane is DOWN", "dev-worker2 is DOWN"]


def test_answers():
    facts = _facts("haproxy-in-front")
    assert (facts["answered"], facts["tries"]) == (12, 12)
    assert judge(facts, Expect(answers=True)) == []
    assert judge(facts | {"answered": 11}, Expect(answers=True)) == ["1 of 12 requests unanswered"]
    assert judge(facts | {"answered": 0}, Expect(answers=True)) == ["12 of 12 requests unanswered"]
    assert judge(facts | {"answered": 0}, Expect(answers=False)) == []
    assert judge(facts, Expect(answers=False)) == ["12 of 12 requests answered"]
    assert judge(facts | {"answered": 1}, Expect(answers=False)) == ["1 of 12 requests answered"]


def test_marked_down_within():
    facts = _facts("node-cut-off")
    expect = Expect(marked_down_within=6)
    assert facts["marked_down_after"] == 3.02
    assert judge(facts, expect) == []
    assert judge(facts | {"marked_down_after": 6.0}, expect) == []
    assert judge(facts | {"marked_down_after": 7.46}, expect) == ["marked DOWN after 7.5s"]
    assert judge(facts | {"marked_down_after": None}, expect) == ["dev-worker2 was never marked DOWN"]
    unnamed = {k: v for k, v in facts.items() if k not in ("cut_node", "marked_down_after")}
    assert judge(unnamed, expect) == ["the cut node was never marked DOWN"]


def test_failures_at_most():
    facts = _facts("node-cut-off")
    assert facts["failed_during"] == 0
    assert judge(facts, Expect(failures_at_most=0)) == []
    assert judge(facts | {"failed_during": 2}, Expect(failures_at_most=0)) == ["2 of 8 requests failed"]
    assert judge(facts | {"failed_during": 2}, Expect(failures_at_most=2)) == []
    assert judge(facts | {"failed_during": 3}, Expect(failures_at_most=2)) == ["3 of 8 requests failed"]


def test_the_labs_cut_off_expectation_checks_every_key():
    probe = next(p for p in labs.load_lab("external-lb").probes if p.id == "node-cut-off")
    expect = probe.expectation("metallb")
    facts = _facts("node-cut-off")
    assert judge(facts, expect) == []
    assert judge(facts | {"marked_down_after": 9.0, "failed_during": 1}, expect) == [
        "marked DOWN after 9.0s", "1 of 8 requests failed"]


# ------------------------------------------------------------------ what the expectations say, the spec

@pytest.mark.parametrize("expect, text", [
    (Expect(up="all", answers=True), "every node UP, answers through HAProxy"),
    (Expect(up="backends", answers=True), "UP only where a backend runs, answers through HAProxy"),
    (Expect(answers=False), "no answer through HAProxy"),
    (Expect(marked_down_within=6, failures_at_most=0), "cut node DOWN within 6s, ≤0 failed requests meanwhile"),
])
def test_descriptions(expect, text):
    assert expect.describe() == text


def test_only_the_cut_off_does_not_settle():
    assert Expect(up="all", answers=True).settles
    assert not Expect(marked_down_within=6).settles
    assert not Expect(failures_at_most=0).settles


def _spec(**keys):
    return haproxy.Spec.model_validate({"id": "haproxy-in-front", "claim": "C25", "kind": "haproxy",
                                        "service": "shop-cluster", "expect": {"up": "all"}} | keys)


def test_only_a_cut_off_changes_the_cluster():
    assert _spec().changes_cluster() is False
    assert _spec(cut_off=False).changes_cluster() is False
    assert _spec(cut_off=True).changes_cluster() is True
    assert [p.changes_cluster() for p in labs.load_lab("external-lb").probes] == [False, False, True]


def test_spec_defaults():
    spec = _spec()
    assert (spec.tries, spec.cut_off, spec.within, spec.path) == (12, False, 20, "haproxy-in-front")
    assert spec.expectation("metallb") == Expect(up="all")


def _cut_probe_run(monkeypatch, statuses):
    """_cut_off_one with HAProxy's view of the spare node going through STATUSES (then staying at
    the last one); the names of the nodes it cut off."""
    import contextlib
    import types

    seen = iter(statuses)
    last = {"status": statuses[0]}

    def stats(ctx, address):
        last["status"] = next(seen, last["status"])
        return {"dev-worker2": {"status": last["status"]}}

    cuts = []

    @contextlib.contextmanager
    def cut_off(ctx, node):
        cuts.append(node)
        yield 0

    monkeypatch.setattr(haproxy, "_stats", stats)
    monkeypatch.setattr(haproxy, "spare_node", lambda ctx: "dev-worker2")
    monkeypatch.setattr(haproxy, "cut_off", cut_off)
    monkeypatch.setattr(haproxy, "outside_dial", lambda *a, **k: {"responses": ["echo-1"]})
    ctx = types.SimpleNamespace(topology=types.SimpleNamespace(pod_nodes={"echo-1": "dev-worker"}))
    evidence = []
    facts = haproxy._cut_off_one(ctx, _spec(cut_off=True, within=1), "172.18.0.10", evidence)
    return cuts, facts, evidence


def test_a_cut_waits_for_the_node_to_be_up_first(monkeypatch):
    # An earlier lab's cut left it DOWN; HAProxy's checks bring it UP, then the cut takes it DOWN.
    cuts, facts, evidence = _cut_probe_run(monkeypatch, ["DOWN", "DOWN", "UP", "UP", "DOWN"])
    assert cuts == ["dev-worker2"]
    assert facts["marked_down_after"] is not None and facts["sent_during"] == 2
    assert evidence[0] == "cut dev-worker2 off the network"


def test_a_node_that_stays_down_is_not_cut(monkeypatch):
    # Its DOWN after the cut would prove nothing: the probe fails, and nothing is cut.
    with pytest.raises(haproxy.SvclabError, match="HAProxy had dev-worker2 DOWN, not UP, for 1s before the cut"):
        _cut_probe_run(monkeypatch, ["DOWN"])
    with pytest.raises(haproxy.SvclabError, match="had dev-worker2 not listed"):
        _cut_probe_run(monkeypatch, [""])
