"""Instructor mode on the session's MetalLB cluster: step mode tells each probe's story in order without ever
waiting when stdin is not a terminal, the policy flip shows its before/after from real facts, and
lab.rules shows the node rules kube-proxy wrote for a lab's Service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from svclab import labs

from .conftest import CLUSTER, svclab

pytestmark = pytest.mark.e2e
NAME = CLUSTER


def step(lab_id: str, *extra: str, tmp: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Runs one lab in step mode with stdin that is not a terminal (and no --no-pause unless
    EXTRA says so): it must never wait, which the timeout would catch."""
    out = tmp / f"{lab_id}.json"
    proc = subprocess.run([sys.executable, "-m", "svclab", f"lab.{lab_id}", "--name", NAME, "--step",
                           "--json", str(out), *extra],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert out.exists(), f"no JSON written\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(out.read_text())


def assert_story_in_order(lab_id: str, stdout: str) -> None:
    lines = stdout.splitlines()
    lab = labs.load_lab(lab_id)
    position = 0
    for index, probe in enumerate((p for batch in labs.run_order(lab, "metallb", "iptables") for p in batch), 1):
        header = next(i for i, line in enumerate(lines) if f"probe {index}/{len(lab.probes)} · {probe.id} " in line)
        predict = lines.index(f"Predict:  {probe.predict}")
        observed = next(i for i in range(predict, len(lines)) if lines[i].startswith("Observed: "))
        assert position <= header < lines.index(f"Path:     {probe.path}") < predict < observed, probe.id
        position = observed


@pytest.fixture(scope="module")
def nodeport(cluster, tmp_path_factory):
    return step("nodeport", tmp=tmp_path_factory.mktemp("nodeport"))


def test_nodeport_step_by_step(nodeport):
    proc, data = nodeport
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["probe"] for r in data["results"]] == [p.id for p in labs.load_lab("nodeport").probes]
    assert all(r["passed"] for r in data["results"])
    assert_story_in_order("nodeport", proc.stdout)
    assert "Enter: observe" not in proc.stdout, "asked for Enter with stdin not a terminal"
    assert proc.stdout.count("Why: ") == len(data["results"])
    assert f"see the rules: svclab lab.rules --service svclab-nodeport/echo --name {NAME}" in proc.stdout
    # The same results table as a normal run, after the story.
    assert proc.stdout.index("7/7 probes as expected") > proc.stdout.rindex("Observed: ")


def test_traffic_policy_before_and_after(cluster, tmp_path):
    proc, data = step("traffic-policy", "--no-pause", tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_story_in_order("traffic-policy", proc.stdout)
    results = {r["probe"]: r for r in data["results"]}
    codes = results["health-check-per-node"]["facts"]["codes"]
    flip = results["flip-the-live-policy"]["facts"]
    assert (flip["before_policy"], flip["before_source"], flip["after_policy"], flip["after_source"]) == \
        ("Cluster", "node", "Local", "client")
    table = proc.stdout[proc.stdout.index("before / after"):proc.stdout.rindex("Why: ")]
    assert "Cluster (before)" in table and "Local (after)" in table
    source_row = next(line for line in table.splitlines() if "source the backend saw" in line)
    assert "(node)" in source_row and "(client)" in source_row
    assert len(codes) == 3 and sorted(codes.values()) == [200, 503, 503]
    for node, code in codes.items():
        row = next(line for line in table.splitlines() if f" {node} " in line)
        assert "none" in row and f"HTTP {code}" in row


def test_rules_of_the_nodeport_service(nodeport):
    _, data = nodeport
    cluster_ip = next(r for r in data["results"] if r["probe"] == "cluster-ip-too")["facts"]["value"]
    node_port = next(r for r in data["results"] if r["probe"] == "node-port-assigned")["facts"]["value"]
    proc = svclab("lab.rules", "--name", NAME, "--service", "svclab-nodeport/echo")
    assert proc.stdout.count("== node ") == 3
    for section in proc.stdout.split("== node ")[1:]:
        assert "-j KUBE-SVC-" in section
        assert f"-d {cluster_ip}/32" in section
        assert f"--dport {node_port} " in section
        assert "echo-fixed" not in section
    one = svclab("lab.rules", "--name", NAME, "--service", "svclab-nodeport/echo", "--node", f"{NAME}-worker")
    assert one.stdout.count("== node ") == 1 and "KUBE-SEP-" in one.stdout


@pytest.mark.parametrize("args, message", [
    (["--service", "svclab-nodeport/no-such-service"], "Service svclab-nodeport/no-such-service does not exist"),
    (["--service", "echo"], "--service must be NAMESPACE/NAME"),
    (["--service", "svclab-nodeport/echo", "--node", "no-such-node"], "has no running node 'no-such-node'"),
])
def test_rules_bad_input_is_one_line_and_exit_2(nodeport, args, message):
    proc = svclab("lab.rules", "--name", NAME, *args, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert proc.stdout == ""


def test_predictions_on_a_terminal(cluster, tmp_path):
    """On a terminal, step mode offers each choice-shaped expectation as choices, takes the
    learner's pick before observing, says right or wrong, and ends with the score. The pending lab
    runs node-port-still-answers (answers: choice 1 is right) before stays-pending (<pending>:
    choice 1, an address, is wrong)."""
    import os
    import pty
    import re
    import select
    import time

    master, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "svclab", "lab.pending", "--name", NAME, "--step"],
                            stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True)
    os.close(terminal)
    os.write(master, b"1\n1\n")
    output, deadline = b"", time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:   # the terminal closed: svclab has ended
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        proc.wait(timeout=60)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace")).replace("\r", "")
    assert proc.returncode == 0, text
    assert "1 answers   2 no answer" in text and "1 an address   2 <pending>" in text
    assert "right: you predicted answers" in text
    assert "not this time: you predicted an address, the answer is <pending>" in text
    assert "predictions: 1 of 2 right" in text
