"""The round-robin kind, without a cluster: the DNS server's configuration, the attempts script
run for real by this machine's POSIX sh (dash) against a fake getent and a fake curl, its output
parsed, and the judge on the facts of a real `lab.dns-round-robin` run (recorded_facts.json), then
on those facts changed the way a misbehaving network would change them: each expectation must be
able to fail."""

import json
import subprocess
from pathlib import Path

import pytest

from svclab import labs
from svclab.probes.base import Prediction
from svclab.probes.kinds import round_robin
from svclab.probes.kinds.round_robin import (Expect, attempts_script, corefile, hosts_file, judge, parse_attempts,
                                             tally)

SAMPLES = Path(__file__).parent / "samples"
RECORDED = json.loads((SAMPLES / "recorded_facts.json").read_text())["providers"]
NAME = "shop.dns-round-robin.svclab.test"
# The recorded runs' nodes; dev-worker2 (172.18.0.3) is the node the cut-off run cut.
NODES = {"172.18.0.2": "dev-control-plane", "172.18.0.4": "dev-worker", "172.18.0.3": "dev-worker2"}
CUT = "172.18.0.3"


def _facts(probe: str) -> dict:
    return next(r["facts"] for r in RECORDED["metallb"] if r["lab"] == "dns-round-robin" and r["probe"] == probe)


def _with_attempts(facts: dict, attempts: list[dict]) -> dict:
    """FACTS as observe would have made them had the clients seen ATTEMPTS."""
    return facts | {"attempts": attempts} | tally(attempts, facts["nodes"], facts.get("cut_ip"))


def _attempt(answer, *, first_ok=True, retry_failed=(), retry_by="first"):
    """One parsed attempt; RETRY_BY "first": the retrying client got through on the first address."""
    retry_by = answer[0] if retry_by == "first" else retry_by
    return {"answer": list(answer), "first": answer[0] if answer else None, "first_ok": first_ok,
            "retry_ok": retry_by is not None, "retry_failed": list(retry_failed), "retry_by": retry_by}


# ------------------------------------------------------------------ the DNS server

def test_corefile_serves_only_svclabs_zone_from_the_hosts_file():
    assert corefile("/etc/svclab/hosts") == (
        "svclab.test:53 {\n"
        "    hosts /etc/svclab/hosts svclab.test {\n"
        "        ttl 1\n"
        "        no_reverse\n"
        "    }\n"
        "    loadbalance\n"
        "    errors\n"
        "}\n")
    assert "forward" not in corefile("/etc/svclab/hosts")   # it resolves nothing else
    assert round_robin.ZONE == "svclab.test"


def test_hosts_file_one_line_per_address():
    assert hosts_file(NAME, sorted(NODES)) == (
        f"172.18.0.2 {NAME}\n172.18.0.3 {NAME}\n172.18.0.4 {NAME}\n")
    assert hosts_file(NAME, []) == ""


# ------------------------------------------------------------------ the attempts script, run by sh

def _getent_line(ip: str) -> str:
    return f"{ip:<15} {NAME}"     # as glibc's getent hosts prints it


def _fake_tools(tmp_path: Path, answers: list[list[str]], dead: set[str]) -> None:
    """A getent that answers `getent hosts NAME` with ANSWERS in turn (an empty one: nothing, exit
    2, as for an unknown name), and a curl that fails to connect (exit 7) to the addresses in DEAD
    and succeeds (exit 0) otherwise, logging its arguments. Both use nothing but sh builtins."""
    count, log = tmp_path / "getent.count", tmp_path / "curl.log"
    cases = "".join(f"  {i}) printf '%s\\n' {' '.join(repr(_getent_line(ip)) for ip in answer)} ;;\n"
                    if answer else f"  {i}) exit 2 ;;\n" for i, answer in enumerate(answers))
    getent = (f"#!/bin/sh\n"
              f"[ \"$1\" = hosts ] && [ \"$2\" = {NAME} ] && [ $# -eq 2 ] || exit 2\n"
              f"n=0; [ -f {count} ] && read n < {count}\n"
              f"printf '%s\\n' $((n+1)) > {count}\n"
              f"case $((n % {len(answers)})) in\n{cases}esac\n")
    dead_cases = "".join(f"  http://{ip}:*) exit 7 ;;\n" for ip in sorted(dead))
    curl = (f"#!/bin/sh\n"
            f"printf '%s\\n' \"$*\" >> {log}\n"
            f"for url; do :; done\n"
            f"case $url in\n{dead_cases}esac\n"
            f"exit 0\n")
    for name, text in (("getent", getent), ("curl", curl)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)


def _run(tmp_path: Path, answers, dead=(), *, tries=None, path=None) -> str:
    _fake_tools(tmp_path, answers, set(dead))
    script = attempts_script(NAME, 30080, len(answers) if tries is None else tries)
    done = subprocess.run(["/bin/sh", "-c", script], env={"PATH": path or f"{tmp_path}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def _curls(tmp_path: Path) -> list[str]:
    log = tmp_path / "curl.log"
    return log.read_text().splitlines() if log.exists() else []


def _curl(ip: str) -> str:
    return f"-s -o /dev/null -m 2 --connect-timeout 0.5 http://{ip}:30080/hostname"


def test_script_every_address_answers(tmp_path):
    answers = [["172.18.0.4", "172.18.0.2", "172.18.0.3"], ["172.18.0.2", "172.18.0.3", "172.18.0.4"],
               ["172.18.0.3", "172.18.0.4", "172.18.0.2"]]
    output = _run(tmp_path, answers)
    assert output.splitlines()[:3] == ["A 172.18.0.4 172.18.0.2 172.18.0.3 ", "N 172.18.0.4 ok", "R ok 172.18.0.4"]
    assert parse_attempts(output) == [_attempt(a) for a in answers]
    # Each attempt: one connection, the first-address client's, which is the retrying client's first too.
    assert _curls(tmp_path) == [_curl("172.18.0.4"), _curl("172.18.0.2"), _curl("172.18.0.3")]
    assert tally(parse_attempts(output), NODES) == {
        "first_by_node": {"dev-worker": 1, "dev-control-plane": 1, "dev-worker2": 1}, "complete_answers": 3,
        "first_failed": 0, "retry_failed": 0, "retries_needed": 0, "answers_with_cut": 0}


def test_script_first_address_dead_the_retrying_client_takes_the_next(tmp_path):
    output = _run(tmp_path, [[CUT, "172.18.0.2", "172.18.0.4"]], dead={CUT})
    assert output.splitlines() == [f"A {CUT} 172.18.0.2 172.18.0.4 ", f"N {CUT} fail", f"R {CUT} fail",
                                   "R ok 172.18.0.2"]
    assert parse_attempts(output) == [{"answer": [CUT, "172.18.0.2", "172.18.0.4"], "first": CUT,
                                       "first_ok": False, "retry_ok": True, "retry_failed": [CUT],
                                       "retry_by": "172.18.0.2"}]
    assert _curls(tmp_path) == [_curl(CUT), _curl("172.18.0.2")]   # the dead address costs one connection


def test_script_dead_address_in_the_middle_costs_the_retrying_client_nothing(tmp_path):
    output = _run(tmp_path, [["172.18.0.4", CUT, "172.18.0.2"]], dead={CUT})
    assert parse_attempts(output) == [_attempt(["172.18.0.4", CUT, "172.18.0.2"])]


def test_script_every_address_dead(tmp_path):
    answer = ["172.18.0.2", "172.18.0.3", "172.18.0.4"]
    output = _run(tmp_path, [answer], dead=set(answer))
    assert output.splitlines()[-1] == "R fail"
    assert parse_attempts(output) == [{"answer": answer, "first": "172.18.0.2", "first_ok": False,
                                       "retry_ok": False, "retry_failed": answer, "retry_by": None}]
    assert _curls(tmp_path) == [_curl(ip) for ip in answer]


def test_script_empty_answer(tmp_path):
    output = _run(tmp_path, [[]])
    assert output.splitlines() == ["A ", "N  fail", "R fail"]
    assert parse_attempts(output) == [{"answer": [], "first": None, "first_ok": False, "retry_ok": False,
                                       "retry_failed": [], "retry_by": None}]
    assert _curls(tmp_path) == []    # nothing to connect to
    assert tally(parse_attempts(output), NODES) == {
        "first_by_node": {"none": 1}, "complete_answers": 0, "first_failed": 1, "retry_failed": 1,
        "retries_needed": 0, "answers_with_cut": 0}


def test_script_attempts_tries_times_each_with_a_new_answer(tmp_path):
    answers = [[CUT, "172.18.0.4", "172.18.0.2"], ["172.18.0.4", CUT, "172.18.0.2"], []]
    attempts = parse_attempts(_run(tmp_path, answers, dead={CUT}, tries=5))
    assert [a["answer"] for a in attempts] == [answers[0], answers[1], [], answers[0], answers[1]]
    assert [a["first_ok"] for a in attempts] == [False, True, False, False, True]
    assert [a["retry_by"] for a in attempts] == ["172.18.0.4", "172.18.0.4", None, "172.18.0.4", "172.18.0.4"]
    assert (tmp_path / "getent.count").read_text() == "5\n"


def test_script_needs_only_sh_builtins_getent_and_curl(tmp_path):
    """With nothing but the fake getent and curl on PATH (no cat, no head, no cut, no sed)."""
    answers = [[CUT, "172.18.0.2", "172.18.0.4"], ["172.18.0.2", "172.18.0.4", CUT]]
    assert parse_attempts(_run(tmp_path, answers, dead={CUT}, path=str(tmp_path))) == [
        _attempt(answers[0], first_ok=False, retry_failed=[CUT], retry_by="172.18.0.2"), _attempt(answers[1])]


def test_script_forces_port_and_tries_to_integers():
    """They go into a command line."""
    script = attempts_script(NAME, "30080", "3")
    assert "while [ $i -lt 3 ]; do" in script
    assert script.count("http://$first:30080/hostname") == 1 and script.count("http://$a:30080/hostname") == 1
    assert f"getent hosts {NAME} |" in script
    with pytest.raises(ValueError):
        attempts_script(NAME, "30080; rm -rf /", 3)


# ------------------------------------------------------------------ parse_attempts

def test_parse_ignores_what_is_not_an_attempt():
    output = "\n".join([
        "N 172.18.0.2 ok",                        # before any answer: nobody's
        "R ok 172.18.0.2",
        "sh: 1: curl: not found",
        "A 172.18.0.2 172.18.0.4 ",
        "",
        "curl: (7) Failed to connect to 172.18.0.2 port 30080",
        "X 172.18.0.2 ok",
        "R",                                      # no words
        "R 172.18.0.2 172.18.0.4 fail",           # three words: not a failed address
        "R ok",                                   # no address: not a success
        "N 172.18.0.2 ok",
        "R ok 172.18.0.2",
    ])
    assert parse_attempts(output) == [_attempt(["172.18.0.2", "172.18.0.4"])]


def test_parse_of_nothing():
    assert parse_attempts("") == []
    assert parse_attempts("garbage\nmore garbage\n") == []


def test_parse_output_cut_in_the_middle():
    whole = "\n".join([f"A {CUT} 172.18.0.2 ", f"N {CUT} fail", f"R {CUT} fail", "R ok 172.18.0.2",
                       f"A {CUT} 172.18.0.4 ", f"N {CUT} fail", f"R {CUT} fail", "R ok 172.18.0.4"]) + "\n"
    first = _attempt([CUT, "172.18.0.2"], first_ok=False, retry_failed=[CUT], retry_by="172.18.0.2")
    assert parse_attempts(whole) == [first, _attempt([CUT, "172.18.0.4"], first_ok=False, retry_failed=[CUT],
                                                     retry_by="172.18.0.4")]
    # Cut inside the retrying client's lines: the last attempt keeps what was read, and counts as
    # unanswered for it.
    cut = whole[:whole.index(f"R {CUT} fail\nR ok 172.18.0.4") + len(f"R {CUT} fa")]
    assert parse_attempts(cut) == [first, {"answer": [CUT, "172.18.0.4"], "first": CUT, "first_ok": False,
                                           "retry_ok": False, "retry_failed": [], "retry_by": None}]
    # Cut after the answer: neither client's result was read.
    second = f"A {CUT} 172.18.0.4 \n"
    assert parse_attempts(whole[:whole.index(second) + len(second)])[-1] == {
        "answer": [CUT, "172.18.0.4"], "first": None, "first_ok": False, "retry_ok": False,
        "retry_failed": [], "retry_by": None}
    # Cut inside an address: the piece is kept as it came.
    assert parse_attempts(f"A {CUT} 172.18.0.")[-1]["answer"] == [CUT, "172.18.0."]
    # Cut inside the first-address client's line.
    assert parse_attempts(f"A {CUT} \nN {CUT} f")[-1]["first_ok"] is False


# ------------------------------------------------------------------ tally

@pytest.mark.parametrize("probe", ["name-lists-every-node", "node-cut-off"])
def test_tally_of_the_recorded_attempts_gives_the_recorded_counts(probe):
    facts = _facts(probe)
    counts = tally(facts["attempts"], facts["nodes"], facts.get("cut_ip"))
    assert counts == {k: facts[k] for k in counts}


def test_tally_counts_the_cut_address_and_unknown_first_addresses():
    attempts = [_attempt([CUT, "172.18.0.2"], first_ok=False, retry_failed=[CUT], retry_by="172.18.0.2"),
                _attempt(["10.0.0.9"])]
    assert tally(attempts, NODES, CUT) == {
        "first_by_node": {"dev-worker2": 1, "10.0.0.9": 1}, "complete_answers": 0, "first_failed": 1,
        "retry_failed": 0, "retries_needed": 1, "answers_with_cut": 1}
    assert tally(attempts, NODES)["answers_with_cut"] == 0


# ------------------------------------------------------------------ the judge

def test_recorded_runs_pass_their_labs_expectations():
    for probe in labs.load_lab("dns-round-robin").probes:
        assert judge(_facts(probe.id), probe.expectation("metallb")) == [], probe.id


def test_every_node_listed():
    facts = _facts("name-lists-every-node")
    # A DNS server that leaves a node out of some answers (the UDP answer cut to fit, or a node
    # dropped from the zone).
    shorter = [a | {"answer": a["answer"][:2]} if i % 4 == 0 else a for i, a in enumerate(facts["attempts"])]
    missing = _with_attempts(facts, shorter)
    assert missing["complete_answers"] == 15
    assert judge(facts, Expect(every_node_listed=True)) == []
    assert judge(missing, Expect(every_node_listed=True)) == ["5 of 20 answers missed a node"]
    assert judge(missing, Expect(every_node_listed=False)) == []
    assert judge(facts, Expect(every_node_listed=False)) == ["every answer listed every node"]


def test_the_dead_node_stays_listed():
    facts = _facts("node-cut-off")
    assert (facts["answers_with_cut"], facts["complete_answers"]) == (30, 30)
    assert judge(facts, Expect(every_node_listed=True)) == []
    # A DNS server that checked its nodes would drop the cut one: the lab's point is that it does not.
    checked = _with_attempts(facts, [a | {"answer": [ip for ip in a["answer"] if ip != CUT]}
                                     for a in facts["attempts"]])
    assert checked["answers_with_cut"] == 0
    assert judge(checked, Expect(every_node_listed=True)) == ["30 of 30 answers missed a node"]


def test_spreads():
    facts = _facts("name-lists-every-node")
    assert facts["first_by_node"] == {"dev-worker": 11, "dev-control-plane": 4, "dev-worker2": 5}
    assert judge(facts, Expect(spreads=True)) == []
    assert judge(facts, Expect(spreads=False)) == ["first addresses on 3 node(s)"]
    # A DNS server (or a caching resolver) that hands out one order every time.
    fixed = _with_attempts(facts, [_attempt(["172.18.0.4", "172.18.0.2", "172.18.0.3"])] * 20)
    assert judge(fixed, Expect(spreads=True)) == ["first addresses on 1 node(s)"]
    assert judge(fixed, Expect(spreads=False)) == []
    # Empty answers are no node.
    empty = _with_attempts(facts, [_attempt([], first_ok=False, retry_by=None)] * 20)
    assert empty["first_by_node"] == {"none": 20}
    assert judge(empty, Expect(spreads=True)) == ["first addresses on 0 node(s)"]


def test_first_attempts_fail():
    healthy, cut = _facts("name-lists-every-node"), _facts("node-cut-off")
    assert (healthy["first_failed"], cut["first_failed"]) == (0, 9)
    assert cut["first_by_node"]["dev-worker2"] == 9     # the failures: the answers that put the cut node first
    assert judge(healthy, Expect(first_attempts_fail=False)) == []
    assert judge(cut, Expect(first_attempts_fail=False)) == ["9 of 30 first attempts failed"]
    assert judge(cut, Expect(first_attempts_fail=True)) == []
    assert judge(healthy, Expect(first_attempts_fail=True)) == ["no first attempt failed"]
    # The cut node's connections answered after all (the cut did not take).
    uncut = _with_attempts(cut, [a | {"first_ok": True, "retry_failed": [], "retry_by": a["answer"][0]}
                                 for a in cut["attempts"]])
    assert judge(uncut, Expect(first_attempts_fail=True)) == ["no first attempt failed"]


def test_retrying_client_succeeds():
    healthy, cut = _facts("name-lists-every-node"), _facts("node-cut-off")
    assert (healthy["retry_failed"], cut["retry_failed"], cut["retries_needed"]) == (0, 0, 9)
    expect = Expect(retrying_client_succeeds=True)
    assert judge(healthy, expect) == [] and judge(cut, expect) == []
    # Every node dark: no address answers either client.
    all_dark = _with_attempts(cut, [a | {"first_ok": False, "retry_ok": False, "retry_by": None,
                                         "retry_failed": a["answer"]} for a in cut["attempts"]])
    assert judge(all_dark, expect) == ["the retrying client failed 30 of 30 times"]
    # The answers that put the cut node first failing the retrying client too (its connect timeout
    # taking the whole time allowed, say).
    some_dark = _with_attempts(cut, [a | {"retry_ok": False, "retry_by": None, "retry_failed": a["answer"]}
                                     if not a["first_ok"] else a for a in cut["attempts"]])
    assert judge(some_dark, expect) == ["the retrying client failed 9 of 30 times"]
    assert judge(some_dark, Expect(retrying_client_succeeds=False)) == []
    assert judge(cut, Expect(retrying_client_succeeds=False)) == ["the retrying client always succeeded"]


def test_no_answer_at_all():
    for probe in ("name-lists-every-node", "node-cut-off"):
        facts = _with_attempts(_facts(probe), [])
        for expect in (Expect(every_node_listed=True), Expect(spreads=False), Expect(first_attempts_fail=True),
                       Expect(retrying_client_succeeds=False)):
            assert judge(facts, expect) == ["the name got no answer"]
    assert judge({}, Expect(spreads=True)) == ["the name got no answer"]


def test_the_labs_cut_off_expectation_checks_every_key():
    probe = next(p for p in labs.load_lab("dns-round-robin").probes if p.id == "node-cut-off")
    expect = probe.expectation("metallb")
    facts = _facts("node-cut-off")
    assert judge(facts, expect) == []
    # A DNS server that health-checked its nodes (what the lab shows DNS round-robin lacks).
    checked = _with_attempts(facts, [_attempt([ip for ip in a["answer"] if ip != CUT]) for a in facts["attempts"]])
    assert judge(checked, expect) == ["30 of 30 answers missed a node", "no first attempt failed"]
    # Every node dark.
    dark = _with_attempts(facts, [a | {"first_ok": False, "retry_ok": False, "retry_by": None,
                                       "retry_failed": a["answer"]} for a in facts["attempts"]])
    assert judge(dark, expect) == ["the retrying client failed 30 of 30 times"]


def test_the_labs_healthy_expectation_checks_every_key():
    probe = next(p for p in labs.load_lab("dns-round-robin").probes if p.id == "name-lists-every-node")
    expect = probe.expectation("metallb")
    facts = _facts("name-lists-every-node")
    assert judge(facts, expect) == []
    broken = _with_attempts(facts, [_attempt([CUT, "172.18.0.4"], first_ok=False, retry_failed=[CUT],
                                             retry_by=None)] * 20)
    assert judge(broken, expect) == ["20 of 20 answers missed a node", "first addresses on 1 node(s)",
                                     "20 of 20 first attempts failed", "the retrying client failed 20 of 20 times"]


# ------------------------------------------------------------------ what the expectations say, the spec

@pytest.mark.parametrize("expect, text", [
    (Expect(every_node_listed=True, spreads=True, first_attempts_fail=False, retrying_client_succeeds=True),
     "every node's address in every answer, first addresses spread over nodes, no first attempt fails, "
     "a retrying client always succeeds"),
    (Expect(every_node_listed=False, spreads=False, first_attempts_fail=True, retrying_client_succeeds=False),
     "not every node listed, one first address, some first attempts fail, retrying fails too"),
])
def test_descriptions(expect, text):
    assert expect.describe() == text


def test_predictions_derive_from_the_expectation():
    assert Expect(first_attempts_fail=False).prediction() == Prediction(("none fails", "some fail"), "none fails")
    assert Expect(first_attempts_fail=True, every_node_listed=True).prediction().right == "some fail"
    assert Expect(every_node_listed=True, spreads=True).prediction() is None
    assert Expect(retrying_client_succeeds=True).prediction() is None


def test_only_expected_failures_do_not_settle():
    assert Expect(every_node_listed=True, spreads=True, first_attempts_fail=False).settles
    assert Expect(retrying_client_succeeds=True).settles
    assert not Expect(first_attempts_fail=True, retrying_client_succeeds=True).settles


def _spec(**keys):
    return round_robin.Spec.model_validate({"id": "name-lists-every-node", "claim": "C26", "kind": "round-robin",
                                            "service": "shop", "expect": {"spreads": True}} | keys)


def test_only_a_cut_off_changes_the_cluster():
    assert _spec().changes_cluster() is False
    assert _spec(cut_off=False).changes_cluster() is False
    assert _spec(cut_off=True).changes_cluster() is True
    assert [p.changes_cluster() for p in labs.load_lab("dns-round-robin").probes] == [False, True]


def test_spec_defaults_and_bounds():
    spec = _spec()
    assert (spec.tries, spec.cut_off, spec.path) == (30, False, "name-lists-every-node")
    assert spec.expectation("metallb") == Expect(spreads=True)
    for bad in ({"tries": 0}, {"tries": 101}, {"service": "Shop"}, {"expect": {}}, {"expect": {"spreads": None}}):
        with pytest.raises(ValueError):
            _spec(**bad)
