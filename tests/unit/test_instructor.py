"""Step mode's texts and views: questions for every probe, the order probes run in, what is shown
after each, and the policy flip's before/after table built from the facts the probe recorded."""

import io
from pathlib import Path

import pytest
from rich.console import Console

from svclab import instructor, labs
from svclab.errors import UsageError
from svclab.labs import Result


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=140, highlight=False, soft_wrap=True), buffer


def _probe(lab_id: str, probe_id: str) -> tuple[labs.Lab, labs.Probe]:
    lab = labs.load_lab(lab_id)
    return lab, next(p for p in lab.probes if p.id == probe_id)


def _result(probe: labs.Probe, *, passed=True, observed="3/3 answered", evidence=(), facts=None) -> Result:
    return Result(lab="nodeport", probe=probe.id, claim=probe.claim, path=probe.path, expected="answers",
                  observed=observed, evidence=list(evidence), passed=passed,
                  problems=[] if passed else ["1 of 3 targets did not answer every request"], seconds=0.42,
                  facts=facts or {})


@pytest.mark.parametrize("lab_id", labs.available_labs())
def test_every_probe_asks_and_explains(lab_id):
    for probe in labs.load_lab(lab_id).probes:
        assert probe.predict.endswith("?"), (lab_id, probe.id)
        assert len(probe.why) > 30, (lab_id, probe.id)


def test_predict_must_be_text():
    data = {"title": "t", "probes": [{"id": "a", "claim": "C12", "kind": "pending", "service": "s", "expect": {"pending": True},
                                      "predict": ["not", "text"]}]}
    with pytest.raises(UsageError, match="predict must be text"):
        labs.parse_lab("broken", data, Path("."))


def test_predict_and_why_are_optional():
    lab = labs.parse_lab("t", {"title": "t", "probes": [{"id": "a", "claim": "C12", "kind": "pending", "service": "s",
                                                         "expect": {"pending": True}}]}, Path("."))
    assert lab.probes[0].predict == "" and lab.probes[0].why == ""


@pytest.mark.parametrize("lab_id", labs.available_labs())
def test_step_mode_takes_the_probes_in_the_run_order(lab_id):
    """Silence is checked only after traffic got through, and probes that change the cluster run
    alone at the end, in step mode as in a normal run: both follow labs.run_order."""
    lab = labs.load_lab(lab_id)
    for provider in ("metallb", "kube-vip", "none"):
        batches = labs.run_order(lab, provider, "iptables")
        flat = [p for batch in batches for p in batch]
        assert sorted(p.id for p in flat) == sorted(p.id for p in lab.probes)
        settled = [p.expectation(provider, "iptables").settles for p in flat if not p.changes_cluster()]
        assert settled == sorted(settled, reverse=True), (lab_id, provider)
        assert all(len(b) == 1 for b in batches if b[0].changes_cluster())


@pytest.mark.parametrize("lab_id, probe_id, hint", [
    ("nodeport", "every-node", "svclab lab.rules --service svclab-nodeport/echo"),
    ("nodeport", "node-port-assigned", None),
    ("nodeport", "pod-to-cluster-ip", None),
    ("loadbalancer", "port-80-at-external-address", "svclab lab.rules --service svclab-loadbalancer/echo"),
    ("traffic-policy", "health-check-per-node", "svclab lab.rules --service svclab-traffic-policy/echo-local"),
    ("traffic-policy", "flip-the-live-policy", "svclab lab.rules --service svclab-traffic-policy/echo-cluster"),
])
def test_rules_hint(lab_id, probe_id, hint):
    lab, probe = _probe(lab_id, probe_id)
    assert instructor.rules_hint(lab, probe, "svclab") == hint


def test_rules_hint_names_another_cluster_and_keeps_a_qualified_service():
    lab, probe = _probe("nodeport", "every-node")
    assert instructor.rules_hint(lab, probe, "class-a").endswith("--service svclab-nodeport/echo --name class-a")
    qualified = probe.model_copy(update={"via": "load-balancer", "service": "svclab-traefik/traefik"})
    assert "--service svclab-traefik/traefik" in instructor.rules_hint(lab, qualified, "svclab")


def test_question_then_answer_in_order():
    lab, probe = _probe("nodeport", "nodes-without-backend")
    out, buffer = _console()
    instructor.question(out, lab, probe, 5)
    instructor.answer(out, lab, probe, _result(probe, evidence=["outside → n2 172.18.0.3:31440: 2/2 answered"]),
                      cluster="svclab")
    lines = buffer.getvalue().splitlines()
    labels = [line.split(":")[0] for line in lines if line[:1].isalpha() and ":" in line]
    assert labels == ["Path", "Predict", "Observed", "Expected", "Verdict", "Why", "see the rules"]
    assert "probe 5/7 · nodes-without-backend (C5)" in buffer.getvalue()
    assert f"Predict:  {probe.predict}" in lines
    assert "Observed: 3/3 answered" in lines
    assert any(line.startswith("Verdict:  as expected (0.4s)") for line in lines)
    assert "  · outside → n2 172.18.0.3:31440: 2/2 answered" in lines


def test_a_differing_probe_says_why_it_differs():
    lab, probe = _probe("nodeport", "every-node")
    out, buffer = _console()
    instructor.answer(out, lab, probe, _result(probe, passed=False, observed="2/3 answered"), cluster="svclab")
    assert "Verdict:  DIFFERS" in buffer.getvalue()
    assert "differs: 1 of 3 targets did not answer every request" in buffer.getvalue()


def _flip_and_health():
    _, flip_probe = _probe("traffic-policy", "flip-the-live-policy")
    _, health_probe = _probe("traffic-policy", "health-check-per-node")
    flip = _result(flip_probe, observed="Cluster: node → Local: client", evidence=[
        "externalTrafficPolicy=Cluster: n1 172.18.0.4:31700: backend saw 10.244.1.1 (node)",
        "externalTrafficPolicy=Local: n1 172.18.0.4:31700: backend saw 172.18.255.238 (client)",
        "externalTrafficPolicy set back to Cluster",
    ], facts={"before_policy": "Cluster", "before_source": "node", "before_ip": "10.244.1.1",
              "after_policy": "Local", "after_source": "client", "after_ip": "172.18.255.238", "rounds": 1})
    health = _result(health_probe, observed="200 on n1", facts={
        "codes": {"cp": 503, "n1": 200, "n2": 0}, "backend_nodes": ["n1"], "rounds": 1})
    return flip_probe, flip, health


def _render(table) -> str:
    out, buffer = _console()
    out.print(table)
    return buffer.getvalue()


def test_before_after_table_from_the_recorded_facts():
    _, flip, health = _flip_and_health()
    text = _render(instructor.before_after(flip, health))
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
            for line in text.splitlines() if line.count("│") == 4}
    assert rows["source the backend saw"] == ["10.244.1.1 (node)", "172.18.255.238 (client)"]
    assert rows["n1"] == ["none", "HTTP 200"]
    assert rows["cp"] == ["none", "HTTP 503"]
    assert rows["n2"] == ["none", "no answer"]
    assert "Cluster (before)" in text and "Local (after)" in text
    assert "probe health-check-per-node" in text and "no healthCheckNodePort" in text


def test_before_after_fits_a_narrow_terminal():
    _, flip, health = _flip_and_health()
    health.facts["codes"] = {"svclab-instr-control-plane": 503, "svclab-instr-worker": 200}
    buffer = io.StringIO()
    Console(file=buffer, width=80, highlight=False).print(instructor.before_after(flip, health))
    text = buffer.getvalue()
    assert "Cluster (before)" in text and "Local (after)" in text and "172.18.255.238 (client)" in text
    assert any("svclab-instr-control-plane" in line and "HTTP 503" in line for line in text.splitlines())


def test_before_after_without_addresses_or_health_checks():
    _, flip, _ = _flip_and_health()
    flip.facts.update(before_ip=None, after_source=None, after_ip=None)
    text = _render(instructor.before_after(flip, None))
    assert "a node address" in text and "no answer" in text
    assert "health check" not in text


def test_the_policy_flip_answer_shows_the_table_from_earlier_results():
    flip_probe, flip, health = _flip_and_health()
    lab = labs.load_lab("traffic-policy")
    out, buffer = _console()
    instructor.answer(out, lab, flip_probe, flip, cluster="svclab", earlier=[health])
    text = buffer.getvalue()
    assert text.index("Observed:") < text.index("before / after") < text.index("Why:")
    assert "HTTP 200" in text


def test_closed_stdin_stops_pausing():
    out, _ = _console()

    def closed(prompt):
        raise EOFError

    assert instructor._wait_for_enter(out, closed) is False
    prompts = []
    assert instructor._wait_for_enter(out, lambda prompt: prompts.append(prompt) or "") is True
    assert "Enter" in prompts[0]


# ------------------------------------------------------------------ predictions

def test_the_choices_and_the_right_answer_come_from_the_expectation():
    _, hidden = _probe("traffic-policy", "cluster-policy-hides-client")
    _, kept = _probe("traffic-policy", "local-policy-keeps-client")
    assert hidden.expectation("metallb").prediction() == instructor.Prediction(("client", "node"), "node")
    assert kept.expectation("metallb").prediction().right == "client"
    _, silent = _probe("clusterip", "outside-to-cluster-ip")
    assert silent.expectation("metallb").prediction().right == "no answer"
    _, lb = _probe("loadbalancer", "port-80-at-external-address")
    assert lb.expectation("metallb").prediction().right == "answers"
    assert lb.expectation("none").prediction().right == "no answer"


def test_labs_offer_predictions_where_the_outcome_is_a_choice():
    without = {lab_id for lab_id in labs.available_labs()
               if not any(p.expectation("metallb").prediction() for p in labs.load_lab(lab_id).probes)}
    # Their probes expect a backend by its name prefix, or one address per Service: not a choice of a few.
    assert without == {"gateway", "ingress"}


def test_the_learner_picks_by_number_or_by_name():
    choices = instructor.Prediction(("client", "node"), "node")
    assert instructor.ask_prediction(choices, lambda prompt: "2") == "node"
    assert instructor.ask_prediction(choices, lambda prompt: "Cl") == "client"
    assert instructor.ask_prediction(choices, lambda prompt: "") is None
    answers = iter(["9", "x", "node"])
    assert instructor.ask_prediction(choices, lambda prompt: next(answers)) == "node"
    with pytest.raises(EOFError):
        instructor.ask_prediction(choices, lambda prompt: (_ for _ in ()).throw(EOFError))


def test_right_wrong_and_the_score():
    _, probe = _probe("traffic-policy", "cluster-policy-hides-client")
    prediction = probe.expectation("metallb").prediction()
    score = instructor.Score()
    assert "right" in instructor.verdict_on(prediction, "node", _result(probe), score)
    assert "the answer is node" in instructor.verdict_on(prediction, "client", _result(probe), score)
    assert "does not count" in instructor.verdict_on(prediction, "node", _result(probe, passed=False), score)
    assert instructor.verdict_on(prediction, None, _result(probe), score) is None
    assert (score.right, score.counted) == (1, 2)
    assert score.line() == "predictions: 1 of 2 right"


def test_the_question_lists_the_choices():
    lab, probe = _probe("traffic-policy", "cluster-policy-hides-client")
    out, buffer = _console()
    instructor.question(out, lab, probe, 1, probe.expectation("metallb").prediction())
    assert "1 client   2 node" in buffer.getvalue()


def test_rules_hint_on_a_cluster_svclab_did_not_make_names_its_kubeconfig_and_context():
    from pathlib import Path

    lab, probe = _probe("nodeport", "every-node")
    hint = instructor.rules_hint(lab, probe, "target-kind-x", target=(Path("/home/a b/k.yaml"), "kind-x"))
    assert hint == "svclab lab.rules --service svclab-nodeport/echo --kubeconfig '/home/a b/k.yaml' --context kind-x"
    assert instructor.rules_hint(lab, probe, "t", target=(Path("/k.yaml"), None)).endswith("--kubeconfig /k.yaml")
