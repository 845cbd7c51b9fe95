"""The dns kind, without a cluster: glibc `getent hosts` output as the in-cluster client prints it
(one line per address: the address padded to 15, the canonical name, then the aliases) parsed,
observe on a fake cluster shaped like `lab.dns`'s (three pods, two ready; a headless Service, one
publishing not-ready addresses, an ordinary one and an ExternalName), and the judge on those facts
and on the facts of a real `lab.clusterip` run (recorded_facts.json), then on them changed the way
a misbehaving cluster DNS would change them: each expectation must be able to fail."""

import json
import types
from pathlib import Path

import pytest

from svclab import labs
from svclab.probes.base import Prediction
from svclab.probes.kinds import dns
from svclab.probes.kinds.dns import Expect, judge, parse_hosts

SAMPLES = Path(__file__).parent / "samples"
RECORDED = json.loads((SAMPLES / "recorded_facts.json").read_text())["providers"]
NAMESPACE = "svclab-dns"
READY, NOT_READY = ["10.244.1.5", "10.244.2.7"], "10.244.1.8"
EVERY = sorted(READY + [NOT_READY])
PLAIN_IP = "10.96.3.4"


def _name(service: str) -> str:
    return f"{service}.{NAMESPACE}.svc.cluster.local"


def _getent(ip: str, *names: str) -> str:
    return f"{ip:<15} {' '.join(names)}"     # as glibc's getent hosts prints it


def _recorded(provider: str = "metallb") -> dict:
    return next(r["facts"] for r in RECORDED[provider] if r["lab"] == "clusterip" and r["probe"] == "dns-resolves")


def _probe(probe_id: str):
    return next(p for p in labs.load_lab("dns").probes if p.id == probe_id)


# What the cluster DNS answers, name → getent hosts output.
ANSWERS = {
    _name("dir"): "".join(_getent(ip, _name("dir")) + "\n" for ip in READY),
    _name("dir-all"): "".join(_getent(ip, _name("dir-all")) + "\n" for ip in [READY[1], NOT_READY, READY[0]]),
    _name("plain"): _getent(PLAIN_IP, _name("plain")) + "\n",
    _name("alias"): _getent(PLAIN_IP, _name("plain"), _name("alias")) + "\n",
}


# ------------------------------------------------------------------ parse_hosts

def test_parse_a_headless_answer():
    output = ANSWERS[_name("dir")]
    assert output == f"10.244.1.5      {_name('dir')}\n10.244.2.7      {_name('dir')}\n"
    assert parse_hosts(output) == (READY, [_name("dir")])
    assert parse_hosts(ANSWERS[_name("dir-all")]) == ([READY[1], NOT_READY, READY[0]], [_name("dir-all")])


def test_parse_a_cname_answer_the_canonical_name_first():
    output = ANSWERS[_name("alias")]
    assert output == f"10.96.3.4       {_name('plain')} {_name('alias')}\n"
    assert parse_hosts(output) == ([PLAIN_IP], [_name("plain"), _name("alias")])
    # A CNAME to a name with several addresses: each line repeats the names, kept once.
    several = "".join(_getent(ip, _name("dir"), _name("alias")) + "\n" for ip in READY)
    assert parse_hosts(several) == (READY, [_name("dir"), _name("alias")])


def test_parse_an_ordinary_answer():
    assert parse_hosts(ANSWERS[_name("plain")]) == ([PLAIN_IP], [_name("plain")])
    assert parse_hosts(_getent(PLAIN_IP, _name("plain"))) == ([PLAIN_IP], [_name("plain")])   # no final newline


def test_parse_of_nothing():
    assert parse_hosts("") == ([], [])
    assert parse_hosts("\n  \n") == ([], [])


# ------------------------------------------------------------------ observe, on a fake cluster

def _pod(name: str, ip: str | None, ready: bool, labels: dict, **meta) -> dict:
    return {"metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, **meta},
            "status": ({"podIP": ip} if ip else {})
            | {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


DIR_READY = {"app.kubernetes.io/name": "dir-ready", "svclab.io/dir": "true"}
DIR_UNREADY = {"app.kubernetes.io/name": "dir-unready", "svclab.io/dir": "true"}
PODS = [_pod("dir-ready-7c9f-abcde", READY[0], True, DIR_READY),
        _pod("dir-ready-7c9f-fghij", READY[1], True, DIR_READY),
        _pod("dir-unready-5d8b-klmno", NOT_READY, False, DIR_UNREADY),
        # Neither counts: one without an address yet, one on its way out.
        _pod("dir-unready-5d8b-pqrst", None, False, DIR_UNREADY),
        _pod("dir-ready-7c9f-uvwxy", "10.244.2.9", True, DIR_READY, deletionTimestamp="2026-12-01T10:00:00Z")]

SERVICES = {
    "dir": {"type": "ClusterIP", "clusterIP": "None", "selector": {"svclab.io/dir": "true"}},
    "dir-all": {"type": "ClusterIP", "clusterIP": "None", "publishNotReadyAddresses": True,
                "selector": {"svclab.io/dir": "true"}},
    "plain": {"type": "ClusterIP", "clusterIP": PLAIN_IP, "selector": {"app.kubernetes.io/name": "dir-ready"}},
    "alias": {"type": "ExternalName", "externalName": _name("plain")},
}


class _Kube:
    def __init__(self, answers: dict, pods: list):
        self.answers, self.pods, self.asked = answers, pods, []

    def get(self, api_version, kind, name, namespace=None):
        assert (api_version, kind, namespace) == ("v1", "Service", NAMESPACE)
        spec = SERVICES.get(name)
        return {"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec} if spec else None

    def get_json(self, path, query, timeout):
        assert path == "/api/v1/namespaces/svclab-system/pods/svclab-client:8080/proxy/shell"
        (key, cmd), = query
        self.asked.append(cmd)
        assert key == "cmd" and cmd.startswith("getent hosts ")
        return json.dumps({"output": self.answers.get(cmd.removeprefix("getent hosts "), "")})

    def list(self, api_version, kind, namespace, label_selector):
        assert (api_version, kind, namespace) == ("v1", "Pod", NAMESPACE)
        wanted = dict(term.split("=") for term in label_selector.split(","))
        return [p for p in self.pods if wanted.items() <= p["metadata"]["labels"].items()]


def _observe(probe_id: str, answers: dict = ANSWERS, pods: list = PODS):
    ctx = types.SimpleNamespace(kube=_Kube(answers, pods), namespace=NAMESPACE, client_pod="svclab-client",
                                settings=types.SimpleNamespace(probe_timeout=5))
    return dns.observe(ctx, _probe(probe_id)), ctx


def test_observe_a_headless_service():
    seen, ctx = _observe("headless-lists-ready-pods")
    assert ctx.kube.asked == [f"getent hosts {_name('dir')}"]
    assert seen.facts == {"value": READY[0], "addresses": READY, "names": [_name("dir")], "cluster_ip": None,
                          "ready_pods": READY, "all_pods": EVERY}
    assert seen.observed == f"{_name('dir')} → {', '.join(READY)}"
    assert seen.evidence == [
        f"pod svclab-client: getent hosts {_name('dir')} → " + "; ".join(ANSWERS[_name("dir")].strip().splitlines()),
        "Service dir: type ClusterIP, ClusterIP None",
        f"pods selected: 3 ({', '.join(EVERY)}), ready: 2"]


def test_observe_an_externalname_service():
    seen, _ = _observe("externalname-is-an-alias")
    assert seen.facts == {"value": PLAIN_IP, "addresses": [PLAIN_IP], "names": [_name("plain"), _name("alias")],
                          "cluster_ip": None, "ready_pods": [], "all_pods": []}
    assert seen.observed == f"{_name('alias')} → {PLAIN_IP} (alias of {_name('plain')})"
    assert seen.evidence[1] == f"Service alias: type ExternalName, ClusterIP none, externalName {_name('plain')}"
    assert len(seen.evidence) == 2          # it selects no pods


def test_observe_no_answer():
    seen, _ = _observe("plain-has-a-cluster-ip", answers={})
    assert seen.facts == {"value": None, "addresses": [], "names": [], "cluster_ip": PLAIN_IP,
                          "ready_pods": READY, "all_pods": READY}
    assert seen.observed == f"{_name('plain')} → nothing"
    assert seen.evidence[0] == f"pod svclab-client: getent hosts {_name('plain')} → (no answer)"


@pytest.mark.parametrize("probe_id", ["plain-has-a-cluster-ip", "headless-lists-ready-pods", "not-ready-published",
                                      "externalname-is-an-alias"])
def test_the_labs_expectations_hold_on_a_cluster_dns_that_behaves(probe_id):
    seen, _ = _observe(probe_id)
    assert judge(seen.facts, _probe(probe_id).expectation("metallb")) == []


# ------------------------------------------------------------------ the judge

def _facts(probe_id: str, **answers) -> dict:
    return _observe(probe_id, ANSWERS | {_name(k.replace("_", "-")): v for k, v in answers.items()})[0].facts


def test_resolves_to_cluster_ip_on_the_recorded_runs():
    for provider in RECORDED:
        facts = _recorded(provider)
        assert judge(facts, Expect(resolves_to_cluster_ip=True)) == [], provider
        ip = facts["cluster_ip"]
        assert judge(facts, Expect(resolves_to_cluster_ip=False)) == [f"resolved to {ip!r}, ClusterIP is {ip!r}"]
        assert judge(facts | {"value": None}, Expect(resolves_to_cluster_ip=True)) == [
            f"resolved to None, ClusterIP is {ip!r}"]
        assert judge(facts | {"value": "10.244.1.5"}, Expect(resolves_to_cluster_ip=True)) == [
            f"resolved to '10.244.1.5', ClusterIP is {ip!r}"]
        assert judge(facts | {"value": None}, Expect(resolves_to_cluster_ip=False)) == []


def test_resolves_to_cluster_ip_without_one():
    """A headless Service has none to resolve to: no answer matches it, not even no answer."""
    headless = _facts("headless-lists-ready-pods")
    assert judge(headless, Expect(resolves_to_cluster_ip=False)) == []
    assert judge(headless, Expect(resolves_to_cluster_ip=True)) == [f"resolved to {READY[0]!r}, ClusterIP is None"]
    assert judge(headless | {"value": None}, Expect(resolves_to_cluster_ip=True)) == [
        "resolved to None, ClusterIP is None"]


def test_cluster_ip():
    plain = _facts("plain-has-a-cluster-ip")
    assert judge(plain, Expect(cluster_ip=True)) == []
    assert judge(plain, Expect(cluster_ip=False)) == [f"ClusterIP {PLAIN_IP}"]
    assert judge(_recorded(), Expect(cluster_ip=True)) == []       # the facts before the key existed
    for probe in ("headless-lists-ready-pods", "externalname-is-an-alias"):
        facts = _facts(probe)
        assert judge(facts, Expect(cluster_ip=False)) == []
        assert judge(facts, Expect(cluster_ip=True)) == ["no ClusterIP"]


def test_addresses_ready_pods():
    facts = _facts("headless-lists-ready-pods")
    assert judge(facts, Expect(addresses="ready-pods")) == []
    # A DNS server that published the not-ready pod too.
    every = _facts("headless-lists-ready-pods", dir=ANSWERS[_name("dir-all")].replace("dir-all", "dir"))
    assert judge(every, Expect(addresses="ready-pods")) == [
        f"answered {', '.join(EVERY)}, the pods are {', '.join(READY)}"]
    # One that lost a ready pod, or answered with the ClusterIP-like address of a Service.
    one = _facts("headless-lists-ready-pods", dir=_getent(READY[0], _name("dir")))
    assert judge(one, Expect(addresses="ready-pods")) == [f"answered {READY[0]}, the pods are {', '.join(READY)}"]
    vip = _facts("headless-lists-ready-pods", dir=_getent(PLAIN_IP, _name("dir")))
    assert judge(vip, Expect(addresses="ready-pods")) == [f"answered {PLAIN_IP}, the pods are {', '.join(READY)}"]
    silent = _facts("headless-lists-ready-pods", dir="")
    assert judge(silent, Expect(addresses="ready-pods")) == [f"answered nothing, the pods are {', '.join(READY)}"]
    # No ready pod and no answer: nothing shown.
    assert judge(facts | {"addresses": [], "ready_pods": []}, Expect(addresses="ready-pods")) == [
        "answered nothing, the pods are none"]


def test_addresses_all_pods():
    facts = _facts("not-ready-published")
    assert facts["addresses"] == EVERY and facts["ready_pods"] == READY
    assert judge(facts, Expect(addresses="all-pods")) == []
    # publishNotReadyAddresses ignored: only the ready ones.
    ready_only = _facts("not-ready-published", dir_all=ANSWERS[_name("dir")].replace("dir", "dir-all"))
    assert judge(ready_only, Expect(addresses="all-pods")) == [
        f"answered {', '.join(READY)}, the pods are {', '.join(EVERY)}"]
    assert judge(ready_only, Expect(addresses="ready-pods")) == []
    assert judge(facts, Expect(addresses="ready-pods")) == [
        f"answered {', '.join(EVERY)}, the pods are {', '.join(READY)}"]
    # Every pod ready (the unready one gone, or ready after all): all-pods shows nothing.
    all_ready = facts | {"addresses": READY, "ready_pods": READY, "all_pods": READY}
    assert judge(all_ready, Expect(addresses="all-pods")) == [
        "every selected pod is ready: nothing tells ready-pods and all-pods apart"]
    observed_all_ready = _observe("not-ready-published", ANSWERS | {
        _name("dir-all"): ANSWERS[_name("dir")].replace("dir", "dir-all")}, PODS[:2])[0].facts
    assert judge(observed_all_ready, Expect(addresses="all-pods")) == [
        "every selected pod is ready: nothing tells ready-pods and all-pods apart"]
    assert judge(facts | {"addresses": [], "all_pods": []}, Expect(addresses="all-pods")) == [
        "answered nothing, the pods are none"]


def test_alias_of():
    facts = _facts("externalname-is-an-alias")
    assert judge(facts, Expect(alias_of=_name("plain"))) == []
    assert judge(facts, Expect(alias_of=_name("dir"))) == [f"canonical name {_name('plain')}"]
    # A cluster DNS that answered the alias's name with an A record of its own: no CNAME.
    flat = _facts("externalname-is-an-alias", alias=_getent(PLAIN_IP, _name("alias")))
    assert judge(flat, Expect(alias_of=_name("plain"))) == [f"canonical name {_name('alias')}"]
    silent = _facts("externalname-is-an-alias", alias="")
    assert judge(silent, Expect(alias_of=_name("plain"))) == ["canonical name none"]
    assert judge(_recorded(), Expect(alias_of=_name("plain"))) == ["canonical name none"]   # no names recorded


def test_the_labs_expectations_check_every_key():
    plain = _probe("plain-has-a-cluster-ip").expectation("metallb")
    headless_plain = _facts("plain-has-a-cluster-ip") | {"cluster_ip": None}
    assert judge(headless_plain, plain) == [f"resolved to {PLAIN_IP!r}, ClusterIP is None", "no ClusterIP"]
    headless = _probe("headless-lists-ready-pods").expectation("metallb")
    as_plain = _facts("headless-lists-ready-pods", dir=_getent(PLAIN_IP, _name("dir"))) | {"cluster_ip": PLAIN_IP}
    assert judge(as_plain, headless) == [f"ClusterIP {PLAIN_IP}",
                                         f"answered {PLAIN_IP}, the pods are {', '.join(READY)}"]
    alias = _probe("externalname-is-an-alias").expectation("metallb")
    # alias made an ordinary Service with a ClusterIP of its own: an A record, no CNAME.
    ordinary = _facts("externalname-is-an-alias", alias=_getent("10.96.7.7", _name("alias")))
    ordinary |= {"cluster_ip": "10.96.7.7"}
    assert judge(ordinary, alias) == ["ClusterIP 10.96.7.7", f"canonical name {_name('alias')}"]
    assert judge(ordinary | {"names": []}, alias) == ["ClusterIP 10.96.7.7", "canonical name none"]


# ------------------------------------------------------------------ what the expectations say, the spec

@pytest.mark.parametrize("expect, text", [
    (Expect(resolves_to_cluster_ip=True), "resolves to the ClusterIP"),
    (Expect(cluster_ip=True, resolves_to_cluster_ip=True), "resolves to the ClusterIP, has a ClusterIP"),
    (Expect(cluster_ip=False, addresses="ready-pods"), "no ClusterIP, one address per ready pod"),
    (Expect(addresses="all-pods"), "one address per pod, ready or not"),
    (Expect(resolves_to_cluster_ip=False, alias_of=_name("plain")),
     f"does not resolve to the ClusterIP, an alias of {_name('plain')}"),
])
def test_descriptions(expect, text):
    assert expect.describe() == text


def test_predictions_derive_from_the_expectation():
    assert Expect(resolves_to_cluster_ip=True).prediction() == Prediction(("the ClusterIP", "something else"),
                                                                         "the ClusterIP")
    assert Expect(resolves_to_cluster_ip=False).prediction().right == "something else"
    choices = ("the ClusterIP", "the ready pods", "every pod")
    assert Expect(cluster_ip=False, addresses="ready-pods").prediction() == Prediction(choices, "the ready pods")
    assert Expect(addresses="all-pods", resolves_to_cluster_ip=False).prediction() == Prediction(choices, "every pod")
    assert Expect(cluster_ip=False, alias_of=_name("plain")).prediction() is None
    assert Expect(cluster_ip=True).prediction() is None


def test_settles():
    assert Expect(cluster_ip=False, addresses="ready-pods").settles


def test_expectation_bounds():
    for bad in ({"addresses": "some-pods"}, {"alias_of": "Plain.svc"}, {"alias_of": "-x"}, {"cluster_ip": None}, {}):
        with pytest.raises(ValueError):
            Expect.model_validate(bad)


def test_spec():
    spec = dns.Spec.model_validate({"id": "d", "claim": "C3", "kind": "dns", "service": "dir",
                                    "expect": {"cluster_ip": False}})
    assert (spec.service, spec.changes_cluster()) == ("dir", False)
    with pytest.raises(ValueError):
        dns.Spec.model_validate({"id": "d", "claim": "C3", "kind": "dns", "service": "ns/dir",
                                 "expect": {"cluster_ip": False}})
