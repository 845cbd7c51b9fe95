"""svclab soak: the report of many runs (pure), the runs' bounds, and the loop's way with a run
that raises, a cluster that is gone and Ctrl-C (the labs stood in for)."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from svclab import soak
from svclab.errors import EXIT_MISMATCH, EXIT_OK, SvclabError, UsageError
from svclab.labs import Result
from svclab.ui import UI


def result(lab, probe, passed=True, observed="answered", evidence=("4/4 answered",), problems=()):
    return Result(lab=lab, probe=probe, claim="C1", path="pod → Service", expected="answers", observed=observed,
                  evidence=list(evidence), passed=passed, problems=list(problems), seconds=0.5)


def run(*flipped):
    """One run of two labs, three probes; the probes named in FLIPPED differ."""
    keys = [("loadbalancer", "port-80-at-external-address"), ("loadbalancer", "external-address"),
            ("nodeport", "every-node")]
    return [result(lab, probe) if probe not in flipped else
            result(lab, probe, passed=False, observed="no answer", evidence=["0/4 answered", "curl: timed out"],
                   problems=["expected an answer"])
            for lab, probe in keys]


def test_a_verdict_that_flips_in_one_run_is_reported_once_with_that_run_and_its_evidence():
    report = soak.summarise([run(), run("port-80-at-external-address"), run()], [150.2, 148.0, 151.7])
    assert [(m.run, m.key) for m in report.unexpected] == [(2, "loadbalancer/port-80-at-external-address")]
    miss = report.unexpected[0]
    assert miss.evidence == ["0/4 answered", "curl: timed out"] and miss.problems == ["expected an answer"]
    tallies = {t.key: (t.ran, t.passed) for t in report.probes}
    assert tallies["loadbalancer/port-80-at-external-address"] == (3, 2)
    assert tallies["nodeport/every-node"] == (3, 3)
    assert report.seconds == [150.2, 148.0, 151.7] and report.labs == ["loadbalancer", "nodeport"]
    assert soak.exit_code(report) == EXIT_MISMATCH


def test_the_lines_name_the_run_the_probe_and_indent_the_evidence():
    text = soak.lines(soak.summarise([run(), run("port-80-at-external-address"), run()], [150, 148, 151]))
    assert text[0] == "3 runs of 2 labs, 3 probes each: 1 unexpected verdict"
    assert "150s, 148s, 151s" in text[1]
    assert "loadbalancer/port-80-at-external-address: as expected in 2 of 3 runs" in text
    line = next(i for i, t in enumerate(text) if t.startswith("run 2 · "))
    assert text[line] == ("run 2 · loadbalancer/port-80-at-external-address: observed no answer; "
                          "problems expected an answer")
    assert text[line + 1:line + 3] == ["    0/4 answered", "    curl: timed out"]


def test_every_run_as_expected_gives_no_unexpected_verdict_and_exit_0():
    report = soak.summarise([run(), run()], [10, 11])
    assert report.unexpected == [] and soak.exit_code(report) == EXIT_OK
    assert soak.lines(report)[0] == "2 runs of 2 labs, 3 probes each: 0 unexpected verdicts"
    doc = json.loads(soak.as_json(report))
    assert doc["runs"] == 2 and doc["summary"]["unexpected"] == 0 and doc["unexpected"] == []
    assert doc["probes"]["nodeport/every-node"] == {"ran": 2, "passed": 2}


def test_no_run_at_all_is_not_a_pass():
    assert soak.exit_code(soak.summarise([], [], asked=5, stopped="interrupted")) == EXIT_MISMATCH


def test_a_run_that_raised_is_reported_with_its_message():
    report = soak.summarise([run(), soak.Raised("the API server to answer: timed out after 300s"), run()],
                            [10, 300, 12])
    assert [(m.run, m.key) for m in report.unexpected] == [(2, soak.THE_RUN)]
    assert report.failed_runs[0].problems == ["the API server to answer: timed out after 300s"]
    assert {t.ran for t in report.probes} == {2}
    text = soak.lines(report)
    assert "1 run stopped with an error" in text
    assert any(t.startswith("run 2 · (the run): observed the run stopped: the API server") for t in text)
    assert json.loads(soak.as_json(report))["summary"]["failed_runs"] == 1


@pytest.mark.parametrize("value, runs", [(None, 3), ("1", 1), (30, 30), ("1000", 1000)])
def test_runs_within_bounds(value, runs):
    assert soak.parse_runs(value) == runs


@pytest.mark.parametrize("value, message", [("0", "between 1 and 1000, got 0"), (1001, "between 1 and 1000, got 1001"),
                                            ("-3", "got -3"), ("many", "a whole number, got 'many'")])
def test_runs_out_of_bounds_are_refused(value, message):
    with pytest.raises(UsageError, match=message):
        soak.parse_runs(value)


def test_the_cli_refuses_zero_runs_in_one_line():
    svclab = Path(sys.executable).parent / "svclab"
    proc = subprocess.run([str(svclab), "soak", "--runs", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: --runs must be between 1 and 1000, got 0"], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# ------------------------------------------------------------------ the loop, with the labs stood in for

def soak_with(monkeypatch, outcomes, *, answers=True, runs=None, bundles=None):
    """soak_runs over runs whose outcomes are OUTCOMES (results, or an exception to raise);
    BUNDLES, a list, gets one entry per diagnostics bundle asked for."""
    left = list(outcomes)
    bundles = [] if bundles is None else bundles

    def collect(env):
        bundles.append(len(outcomes) - len(left))   # the run it was asked after
        return Path(f"/tmp/bundle-{len(bundles)}")

    def fake_run_labs(env, selected):
        outcome = left.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(soak.labs, "run_labs_timed", fake_run_labs)
    monkeypatch.setattr(soak, "api_answers", lambda env: answers)
    return soak.soak_runs(types.SimpleNamespace(), [], runs or len(outcomes), UI(quiet=True), collect=collect)


def test_the_first_run_that_differs_leaves_one_diagnostics_bundle(monkeypatch):
    bundles = []
    report = soak_with(monkeypatch, [run(), run("every-node"), run("every-node"), run()], bundles=bundles)
    assert bundles == [2] and report.diagnostics == "/tmp/bundle-1"
    assert json.loads(soak.as_json(report))["diagnostics"] == "/tmp/bundle-1"
    assert soak_with(monkeypatch, [run(), run()]).diagnostics is None


def test_a_run_that_raises_is_recorded_and_the_soak_goes_on(monkeypatch):
    report = soak_with(monkeypatch, [run(), SvclabError("the echo pods to be ready: timed out"), run()])
    assert report.runs == 3 and report.stopped is None
    assert [m.key for m in report.unexpected] == [soak.THE_RUN]
    assert "timed out" in report.unexpected[0].observed and len(report.seconds) == 3


def test_a_gone_cluster_stops_the_soak(monkeypatch):
    report = soak_with(monkeypatch, [run(), SvclabError("lost"), run()], answers=False)
    assert report.runs == 2 and report.asked == 3
    assert report.stopped == "the cluster's API server does not answer"


def test_ctrl_c_reports_what_the_runs_so_far_saw(monkeypatch):
    report = soak_with(monkeypatch, [run("every-node"), KeyboardInterrupt()], runs=5)
    assert report.interrupted and report.runs == 1 and report.asked == 5
    assert [(m.run, m.key) for m in report.unexpected] == [(1, "nodeport/every-node")]
    assert "stopped after run 1 of 5: interrupted" in soak.lines(report)


def test_a_bug_is_not_taken_for_a_failed_run(monkeypatch):
    with pytest.raises(ZeroDivisionError):
        soak_with(monkeypatch, [ZeroDivisionError()])


def test_the_longest_run_names_its_slowest_probe():
    import dataclasses

    slow = [dataclasses.replace(r, seconds=40.0) if r.probe == "every-node" else r for r in run()]
    report = soak.summarise([run(), soak.Raised("the API server to answer: timed out"), slow], [12, 5, 51])
    assert report.slowest[1] is None and report.slowest[2] == ("nodeport/every-node", 40.0)
    assert soak.wall_times(report) == ("wall time per run: 12s, 5s, 51s (median 12s, longest 51s: run 3, "
                                       "whose slowest probe, nodeport/every-node, took 40.0s)")
    doc = json.loads(soak.as_json(report))
    assert doc["slowest_probe"][1] is None and doc["slowest_probe"][2] == {"probe": "nodeport/every-node",
                                                                           "seconds": 40.0}
