"""The http kind's max_backends key (lab.affinity: sessionAffinity ClientIP keeps a client on one
pod), on facts made the way observe makes them (http.summarize of the clients' answers) and on
the facts of a real `lab.clusterip` run (recorded_facts.json): each expectation must be able to
fail. Its wording and the prediction it gives step mode."""

import json
from pathlib import Path

import pytest

from svclab import labs
from svclab.probes import NodeInfo, Topology
from svclab.probes.base import Prediction
from svclab.probes.kinds import http
from svclab.probes.kinds.http import Expect, judge

RECORDED = json.loads((Path(__file__).parent / "samples" / "recorded_facts.json").read_text())["providers"]
PODS = ["echo-5dd47c86df-849dj", "echo-5dd47c86df-g9pt6", "echo-5dd47c86df-zdjbw", "echo-5dd47c86df-q2x8m"]
TOPOLOGY = Topology(
    nodes=[NodeInfo("svclab-control-plane", "172.18.0.3", "10.244.0.0/24", False),
           NodeInfo("svclab-worker", "172.18.0.2", "10.244.1.0/24", True),
           NodeInfo("svclab-worker2", "172.18.0.4", "10.244.2.0/24", True)],
    pod_nodes={PODS[0]: "svclab-worker", PODS[1]: "svclab-worker2", PODS[2]: "svclab-worker",
               PODS[3]: "svclab-worker2"},
    client_ip="172.18.255.254", client_pod_ip="10.244.1.9")


def _probe(probe_id: str):
    return next(p for p in labs.load_lab("affinity").probes if p.id == probe_id)


def _seen(responses: list[str], *, errors=(), label="ClusterIP", source="pod", via_node=None) -> dict:
    """The facts observe makes of one target's answers (12 new connections, as the lab sends)."""
    return http.summarize([{"label": label, "responses": responses, "errors": list(errors), "via_node": via_node}],
                          TOPOLOGY, client_ip=TOPOLOGY.client_pod_ip if source == "pod" else TOPOLOGY.client_ip,
                          request="hostname", tries=12, source=source).facts


STICKY = _seen([PODS[2]] * 12)
SPREAD = _seen([PODS[i % 4] for i in range(12)])
TWO = _seen([PODS[0]] * 11 + [PODS[1]])


def test_the_facts_are_observes():
    assert STICKY["backends"] == [PODS[2]] and STICKY["backend_nodes"] == ["svclab-worker"]
    assert STICKY["responses"] == 12 and STICKY["answered_targets"] == 1
    assert SPREAD["backends"] == sorted(PODS)


def test_max_backends_one():
    expect = Expect(max_backends=1)
    assert judge(STICKY, expect) == []
    # No affinity: connections balanced afresh.
    assert judge(SPREAD, expect) == ["reached 4 backends"]
    # Affinity lost once (its timeout passed, or the pod went away mid-run).
    assert judge(TWO, expect) == ["reached 2 backends"]
    # Nobody answered: that is no evidence of stickiness.
    silent = _seen([], errors=["curl: (28) Connection timed out after 2001 milliseconds"] * 12)
    assert judge(silent, expect) == ["reached 0 backends"]
    assert judge({}, expect) == ["reached 0 backends"]


def test_max_backends_on_the_recorded_runs():
    spread = next(r["facts"] for r in RECORDED["metallb"]
                  if r["lab"] == "clusterip" and r["probe"] == "pod-to-cluster-ip")
    assert len(spread["backends"]) == 3
    assert judge(spread, Expect(max_backends=1)) == ["reached 3 backends"]
    assert judge(spread, Expect(max_backends=2)) == ["reached 3 backends"]
    assert judge(spread, Expect(max_backends=3)) == []
    assert judge(spread | {"backends": spread["backends"][:1]}, Expect(max_backends=1)) == []


def test_max_and_min_backends_together():
    expect = Expect(min_backends=2, max_backends=3)
    assert judge(TWO, expect) == []
    assert judge(STICKY, expect) == ["reached 1 backends"]
    assert judge(SPREAD, expect) == ["reached 4 backends"]


def test_the_labs_expectations():
    sticky = _probe("sticky-from-a-pod").expectation("metallb")
    plain = _probe("plain-from-a-pod").expectation("metallb")
    assert judge(STICKY, sticky) == [] and judge(SPREAD, plain) == []
    assert judge(SPREAD, sticky) == ["reached 4 backends"]
    assert judge(STICKY, plain) == ["reached 1 backends"]
    # Answers with errors among them: the answers key fails, the one pod that answered is still one.
    flaky = _seen([PODS[2]] * 10, errors=["curl: (7) Failed to connect"] * 2)
    assert judge(flaky, sticky) == ["0 of 1 targets did not answer every request"]
    silent = _seen([])
    assert judge(silent, sticky) == ["1 of 1 targets did not answer every request", "reached 0 backends"]


def test_the_labs_expectations_from_outside():
    sticky = _probe("sticky-from-outside")
    outside = _seen([PODS[1]] * 12, label="load balancer 172.18.255.200", source="outside", via_node="svclab-worker")
    assert judge(outside, sticky.expectation("metallb")) == []
    assert judge(outside, sticky.expectation("none")) == ["1 of 1 targets answered"]
    # No external address (provider none): no target, no answer.
    nothing = http.summarize([], TOPOLOGY, client_ip=TOPOLOGY.client_ip, request="hostname", tries=12).facts
    assert judge(nothing, sticky.expectation("none")) == []
    assert judge(nothing, sticky.expectation("metallb")) == ["0 of 0 targets did not answer every request",
                                                             "reached 0 backends"]


# ------------------------------------------------------------------ what the expectations say

@pytest.mark.parametrize("expect, text", [
    (Expect(answers=True, max_backends=1), "answers, always the same pod"),
    (Expect(max_backends=3), "≤3 backends"),
    (Expect(answers=True, min_backends=2), "answers, ≥2 backends"),
])
def test_descriptions(expect, text):
    assert expect.describe() == text


def test_predictions():
    same = Prediction(("the same pod", "different pods"), "the same pod")
    assert Expect(max_backends=1).prediction() == same
    assert Expect(answers=True, max_backends=1).prediction() == same
    assert _probe("sticky-from-a-pod").expectation("metallb").prediction() == same
    assert Expect(max_backends=2).prediction() is None
    assert Expect(answers=True, max_backends=2).prediction() is None
    assert Expect(source="client", max_backends=1).prediction().choices == ("client", "node")
    assert _probe("sticky-from-outside").expectation("none").prediction() == Prediction(("answers", "no answer"),
                                                                                        "no answer")


def test_settles_and_bounds():
    assert Expect(answers=True, max_backends=1).settles
    for bad in ({"max_backends": 0}, {"max_backends": None}, {"max_backends": "one"}):
        with pytest.raises(ValueError):
            Expect.model_validate(bad)
