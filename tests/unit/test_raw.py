"""The raw kind, without a cluster: the netcat script run for real by this machine's POSIX sh
(dash) against a fake nc, inside the braces the outside client's long-lived shell wraps every
command in (outside.py), its output parsed, observe on a fake cluster and that fake nc, and the
judge on the facts of a real `lab.tcp-udp` run (recorded_facts.json), then on those facts changed
the way a misbehaving network would change them: each expectation must be able to fail."""

import json
import subprocess
import types
from pathlib import Path

import pytest

from svclab import labs
from svclab.errors import SvclabError
from svclab.probes import NodeInfo
from svclab.probes.base import Prediction
from svclab.probes.kinds import raw
from svclab.probes.kinds.raw import NO_NC, Expect, judge, parse_raw, raw_script

SAMPLES = Path(__file__).parent / "samples"
RECORDED = json.loads((SAMPLES / "recorded_facts.json").read_text())["providers"]
NAMESPACE = "svclab-tcp-udp"
LB_IP, INGRESS_IP = "172.18.255.200", "172.18.255.201"
NODES = [NodeInfo("dev-control-plane", "172.18.0.3", "10.244.0.0/24", False),
         NodeInfo("dev-worker", "172.18.0.2", "10.244.1.0/24", True),
         NodeInfo("dev-worker2", "172.18.0.4", "10.244.2.0/24", False)]
UDP_NODE_PORT = 31090
POD = "proto-6c8f7b9d4-x7k2q"
# What the fake network answers: (host, port, protocol) → the backend's name as it writes it.
ANSWERS = {(LB_IP, 9000, "tcp"): POD + "\n", (LB_IP, 9000, "udp"): POD,
           **{(n.ip, UDP_NODE_PORT, "udp"): POD for n in NODES}}


def _facts(probe: str) -> dict:
    return next(r["facts"] for r in RECORDED["metallb"] if r["lab"] == "tcp-udp" and r["probe"] == probe)


def _probe(probe_id: str):
    return next(p for p in labs.load_lab("tcp-udp").probes if p.id == probe_id)


# ------------------------------------------------------------------ the script, run by sh

def _fake_nc(tmp_path: Path, answers: dict) -> Path:
    """An nc that logs its arguments and what it read on stdin, answers (HOST, PORT, PROTOCOL) in
    ANSWERS with its name and anything else with nothing (exit 1, as netcat does when nothing
    came within -w), and prints BAD ... instead when not called as raw_script must call it:
    `nc -w 2 HOST PORT` over TCP with nothing on stdin, `nc -u -W 1 -w 2 HOST PORT` over UDP with
    the datagram `hostname` on stdin (-W 1: it stops at the first answer). Only sh builtins."""
    log = tmp_path / "nc.log"
    cases = "".join(f"  {host}:{port}/{proto}) printf '%s' '{name}' ;;\n"
                    for (host, port, proto), name in answers.items())
    text = (f"#!/bin/sh\n"
            f"IFS= read -r sent || :\n"
            f"printf '%s <%s>\\n' \"$*\" \"$sent\" >> {log}\n"
            f"proto=tcp\n"
            f"if [ \"$1\" = -u ]; then proto=udp; shift\n"
            f"  if [ \"$1\" != -W ] || [ \"$2\" != 1 ]; then printf 'BAD ARGS'; exit 2; fi; shift 2; fi\n"
            f"if [ $# -ne 4 ] || [ \"$1\" != -w ] || [ \"$2\" != 2 ]; then printf 'BAD ARGS'; exit 2; fi\n"
            f"if [ $proto = udp ] && [ \"$sent\" != hostname ]; then printf 'BAD DATAGRAM'; exit 2; fi\n"
            f"if [ $proto = tcp ] && [ -n \"$sent\" ]; then printf 'BAD STDIN'; exit 2; fi\n"
            f"case $3:$4/$proto in\n{cases}  *) exit 1 ;;\nesac\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nc").write_text(text)
    (bin_dir / "nc").chmod(0o755)
    return bin_dir


def _session(script: str, path: str) -> str:
    """SCRIPT's output as the outside client's shell gives it back (outside.Session.run: braces,
    stdin /dev/null, stderr into stdout), checking that the shell goes on after it."""
    done = subprocess.run(["/bin/sh", "-c", f"{{ {script}\n}} </dev/null 2>&1; echo still-here"],
                          env={"PATH": path}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.endswith("still-here\n"), done.stdout
    return done.stdout[:-len("still-here\n")]


def _nc_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "nc.log"
    return log.read_text().splitlines() if log.exists() else []


def test_script_tcp_answers(tmp_path):
    bin_dir = _fake_nc(tmp_path, ANSWERS)
    output = _session(raw_script("tcp", LB_IP, 9000, 2), f"{bin_dir}:/usr/bin:/bin")
    assert output == f"{POD}\x1f\n{POD}\x1f\n"        # the name's newline is gone: $( ) strips it
    assert parse_raw(output) == [POD, POD]
    assert _nc_calls(tmp_path) == [f"-w 2 {LB_IP} 9000 <>"] * 2


def test_script_udp_sends_a_datagram_and_reads_the_answer(tmp_path):
    bin_dir = _fake_nc(tmp_path, ANSWERS)
    output = _session(raw_script("udp", LB_IP, 9000, 3), f"{bin_dir}:/usr/bin:/bin")
    assert parse_raw(output) == [POD] * 3
    assert _nc_calls(tmp_path) == [f"-u -W 1 -w 2 {LB_IP} 9000 <hostname>"] * 3


def test_script_silence_is_an_empty_answer_per_try(tmp_path):
    bin_dir = _fake_nc(tmp_path, ANSWERS)
    for proto in ("tcp", "udp"):
        output = _session(raw_script(proto, INGRESS_IP, 9000, 2), f"{bin_dir}:/usr/bin:/bin")
        assert output == "\x1f\n\x1f\n"
        assert parse_raw(output) == ["", ""]
    assert _nc_calls(tmp_path) == [f"-w 2 {INGRESS_IP} 9000 <>"] * 2 + [f"-u -W 1 -w 2 {INGRESS_IP} 9000 <hostname>"] * 2


def test_script_a_wrong_protocol_gets_nothing(tmp_path):
    """The fake network answers 9000/tcp at the external address on TCP only, nodePorts on UDP only."""
    bin_dir = _fake_nc(tmp_path, {(LB_IP, 9000, "tcp"): POD})
    assert parse_raw(_session(raw_script("udp", LB_IP, 9000, 1), f"{bin_dir}:/usr/bin:/bin")) == [""]
    bin_dir = _fake_nc(tmp_path, {(NODES[0].ip, UDP_NODE_PORT, "udp"): POD})
    assert parse_raw(_session(raw_script("tcp", NODES[0].ip, UDP_NODE_PORT, 1), f"{bin_dir}:/usr/bin:/bin")) == [""]


def test_script_needs_only_sh_builtins_and_nc(tmp_path):
    """With nothing but the fake nc on PATH (no cat, no head, no tr)."""
    bin_dir = _fake_nc(tmp_path, ANSWERS)
    assert parse_raw(_session(raw_script("udp", LB_IP, 9000, 2), str(bin_dir))) == [POD, POD]
    assert parse_raw(_session(raw_script("tcp", INGRESS_IP, 9000, 1), str(bin_dir))) == [""]


def test_script_without_nc_prints_the_marker_and_leaves_the_shell_running(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for proto in ("tcp", "udp"):
        output = _session(raw_script(proto, LB_IP, 9000, 2), str(empty))   # printf, command: dash builtins
        assert output == NO_NC + "\n"
        assert NO_NC in output and parse_raw(output) == []
    assert NO_NC == "svclab: no nc"


def test_script_forces_port_and_tries_to_integers():
    """They go into a command line."""
    script = raw_script("tcp", LB_IP, "9000", "3")
    assert "while [ $i -lt 3 ]; do" in script
    assert f"nc -w 2 {LB_IP} 9000 </dev/null" in script and "-u" not in script
    assert f"printf 'hostname' | nc -u -W 1 -w 2 {LB_IP} 9000" in raw_script("udp", LB_IP, 9000, 1)
    with pytest.raises(ValueError):
        raw_script("tcp", LB_IP, "9000; rm -rf /", 1)
    with pytest.raises(ValueError):
        raw_script("udp", LB_IP, 9000, "1; reboot")


# ------------------------------------------------------------------ parse_raw

def test_parse_of_nothing_and_of_garbage():
    assert parse_raw("") == []
    assert parse_raw("garbage\nmore garbage\n") == []
    assert parse_raw(NO_NC + "\n") == []


def test_parse_keeps_one_answer_per_try_and_drops_an_unfinished_one():
    assert parse_raw(f"{POD}\x1f\n\x1f\n  {POD} \x1f\n") == [POD, "", POD]
    assert parse_raw(f"{POD}\x1f\n{POD[:5]}") == [POD]      # cut inside the second try
    assert parse_raw("two\nlines\x1f\n") == ["two\nlines"]


# ------------------------------------------------------------------ observe, on a fake cluster

class _Kube:
    def __init__(self, services: dict):
        self.services = services

    def get(self, api_version, kind, name, namespace=None):
        assert (api_version, kind) == ("v1", "Service")
        return self.services.get(f"{namespace}/{name}")

    def list(self, *args, **kwargs):   # Warning events: none
        return []


def _service(namespace: str, name: str, ports: list[dict], ip: str | None) -> dict:
    return {"metadata": {"namespace": namespace, "name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "ports": ports},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}}}


def _ctx(tmp_path: Path, answers: dict, *, lb_ip: str | None = LB_IP, path: str | None = None):
    bin_dir = _fake_nc(tmp_path, answers)
    services = {
        f"{NAMESPACE}/proto-tcp": _service(NAMESPACE, "proto-tcp", [
            {"port": 9000, "protocol": "TCP", "targetPort": "raw-tcp", "nodePort": 30790}], lb_ip),
        f"{NAMESPACE}/proto-udp": _service(NAMESPACE, "proto-udp", [
            {"port": 9000, "protocol": "UDP", "targetPort": "raw-udp", "nodePort": UDP_NODE_PORT}], lb_ip),
        "svclab-traefik/traefik": _service("svclab-traefik", "traefik", [
            {"name": "web", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "websecure", "port": 443, "protocol": "TCP", "nodePort": 30443}], INGRESS_IP),
    }
    path = path or f"{bin_dir}:/usr/bin:/bin"
    outside = types.SimpleNamespace(run=lambda command, timeout: (0, _session(command, path)))
    return types.SimpleNamespace(
        kube=_Kube(services), namespace=NAMESPACE, outside=outside,
        topology=types.SimpleNamespace(nodes=NODES, pool=types.SimpleNamespace(subnet="172.18.0.0/16")),
        settings=types.SimpleNamespace(wait_timeout=1),
        env=types.SimpleNamespace(provider=types.SimpleNamespace(expects_address=lb_ip is not None)))


@pytest.mark.parametrize("probe_id", ["tcp-at-external-address", "udp-at-external-address", "udp-node-ports",
                                      "tcp-not-through-ingress", "udp-not-through-ingress"])
def test_observe_on_a_network_like_metallbs_makes_the_recorded_facts(tmp_path, probe_id):
    probe = _probe(probe_id)
    seen = raw.observe(_ctx(tmp_path, ANSWERS), probe)
    assert seen.facts == _facts(probe_id)
    assert judge(seen.facts, probe.expectation("metallb")) == []


def test_observe_evidence_and_summary(tmp_path):
    seen = raw.observe(_ctx(tmp_path, ANSWERS), _probe("udp-node-ports"))
    assert seen.observed == "3/3 targets answered over UDP"
    assert seen.evidence == [f"outside → {n.name} {n.ip}:{UDP_NODE_PORT}/udp: 2/2 answered by {POD}" for n in NODES]
    ingress = raw.observe(_ctx(tmp_path, ANSWERS), _probe("udp-not-through-ingress"))
    assert ingress.observed == "0/1 targets answered over UDP"
    assert ingress.evidence == ["Service svclab-traefik/traefik declares no 9000/udp",
                                f"outside → {INGRESS_IP}:9000/udp: 0/2 answered"]


def test_observe_one_node_dropping_udp(tmp_path):
    dark = NODES[2]
    answers = {k: v for k, v in ANSWERS.items() if k[0] != dark.ip}
    probe = _probe("udp-node-ports")
    seen = raw.observe(_ctx(tmp_path, answers), probe)
    assert seen.facts == {"protocol": "udp", "targets": 3, "answered_targets": 2, "silent_targets": 1}
    assert judge(seen.facts, probe.expectation("metallb")) == ["1 of 3 targets did not answer every try"]


def test_observe_without_an_external_address(tmp_path):
    probe = _probe("tcp-at-external-address")
    seen = raw.observe(_ctx(tmp_path, ANSWERS, lb_ip=None), probe)
    assert seen.facts == {"protocol": "tcp", "targets": 0, "answered_targets": 0, "silent_targets": 0}
    assert seen.evidence == ["Service proto-tcp has no external address"]
    assert judge(seen.facts, probe.expectation("none")) == []
    assert judge(seen.facts, probe.expectation("metallb")) == ["no target"]


def test_observe_without_nc_says_how_to_get_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SvclabError, match="has no nc"):
        raw.observe(_ctx(tmp_path, ANSWERS, path=str(empty)), _probe("udp-node-ports"))


# ------------------------------------------------------------------ the judge

def test_recorded_runs_pass_their_labs_expectations():
    for probe in labs.load_lab("tcp-udp").probes:
        assert judge(_facts(probe.id), probe.expectation("metallb")) == [], probe.id


def test_answers():
    facts = _facts("udp-node-ports")
    assert (facts["targets"], facts["answered_targets"]) == (3, 3)
    assert judge(facts, Expect(answers=True)) == []
    # A node whose kube-proxy does not forward UDP, or one that answered only some tries.
    one_silent = facts | {"answered_targets": 2, "silent_targets": 1}
    assert judge(one_silent, Expect(answers=True)) == ["1 of 3 targets did not answer every try"]
    partly = facts | {"answered_targets": 2, "silent_targets": 0}
    assert judge(partly, Expect(answers=True)) == ["1 of 3 targets did not answer every try"]
    none = facts | {"answered_targets": 0, "silent_targets": 3}
    assert judge(none, Expect(answers=True)) == ["3 of 3 targets did not answer every try"]
    assert judge(facts | {"targets": 0, "answered_targets": 0}, Expect(answers=True)) == ["no target"]
    assert judge({}, Expect(answers=True)) == ["no target"]


def test_no_answer():
    facts = _facts("tcp-not-through-ingress")
    assert (facts["targets"], facts["silent_targets"]) == (1, 1)
    assert judge(facts, Expect(answers=False)) == []
    # An Ingress controller that forwarded raw TCP after all (a TCP entrypoint on 9000).
    answered = facts | {"answered_targets": 1, "silent_targets": 0}
    assert judge(answered, Expect(answers=False)) == ["1 of 1 targets answered"]
    # Some tries answered, some not: not silent either.
    assert judge(facts | {"silent_targets": 0}, Expect(answers=False)) == ["1 of 1 targets answered"]
    assert judge(_facts("tcp-at-external-address"), Expect(answers=False)) == ["1 of 1 targets answered"]
    assert judge(_facts("udp-node-ports"), Expect(answers=False)) == ["3 of 3 targets answered"]
    # No target at all (provider none: no external address) is silence.
    assert judge({"protocol": "tcp", "targets": 0, "answered_targets": 0, "silent_targets": 0},
                 Expect(answers=False)) == []


# ------------------------------------------------------------------ what the expectations say, the spec

def test_descriptions():
    assert Expect(answers=True).describe() == "answers"
    assert Expect(answers=False).describe() == "no answer"


def test_predictions_derive_from_the_expectation():
    assert Expect(answers=True).prediction() == Prediction(("answers", "no answer"), "answers")
    assert Expect(answers=False).prediction() == Prediction(("answers", "no answer"), "no answer")


def test_only_answers_settle():
    assert Expect(answers=True).settles
    assert not Expect(answers=False).settles


def _spec(**keys):
    return raw.Spec.model_validate({"id": "udp-node-ports", "claim": "C28", "kind": "raw", "protocol": "udp",
                                    "service": "proto-udp", "via": "node-port", "expect": {"answers": True}} | keys)


def test_spec_defaults_and_bounds():
    spec = _spec()
    assert (spec.tries, spec.port, spec.path, spec.changes_cluster()) == (2, None, "udp-node-ports", False)
    assert spec.rules_service() == "proto-udp"
    for bad in ({"tries": 0}, {"tries": 21}, {"port": 0}, {"port": 65536}, {"protocol": "sctp"},
                {"via": "cluster-ip"}, {"expect": {}}, {"expect": {"answers": None}}):
        with pytest.raises(ValueError):
            _spec(**bad)
