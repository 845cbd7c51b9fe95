"""The scale-to-zero kind, without a cluster: the timed request run for real by this machine's POSIX
sh (dash) inside the braces the outside client's long-lived shell wraps every command in
(outside.py), against a fake curl that answers as a node does once a Service has no pod (refused
at once), as an address nothing holds does (no route to host, or no answer until curl's -m), and
as a Service with pods does; its output parsed; observe on a fake cluster that scales; and the
judge on those facts, changed the way a misbehaving network would change them: each expectation
must be able to fail. (No `lab.no-endpoints` run is recorded yet: the facts are made as observe
makes them.)"""

import subprocess
import types
from pathlib import Path

import pytest

from svclab import labs
from svclab.errors import SvclabError
from svclab.probes import NodeInfo
from svclab.probes.base import Prediction
from svclab.probes.kinds import scale_to_zero
from svclab.probes.kinds.scale_to_zero import Expect, judge, parse_timed, timed_script

NAMESPACE = "svclab-no-endpoints"
NODES = [NodeInfo("dev-control-plane", "172.18.0.3", "10.244.0.0/24", False),
         NodeInfo("dev-worker", "172.18.0.2", "10.244.1.0/24", True)]
NODE_PORT, LB_IP = 31000, "172.18.255.200"
REFUSED = "curl: (7) Failed to connect to 172.18.0.2 port 31000 after 2 ms: Connection refused"
TIMED_OUT = "curl: (28) Connection timed out after 3002 milliseconds"
NO_ROUTE = f"curl: (7) Failed to connect to {LB_IP} port 80 after 3069 ms: No route to host"


def _probe(probe_id: str):
    return next(p for p in labs.load_lab("no-endpoints").probes if p.id == probe_id)


# ------------------------------------------------------------------ the script, run by sh, with a fake curl

def _url(ip: str, port: int) -> str:
    return f"http://{ip}:{port}/hostname"


def _refusal(ip: str, port: int, ms: int = 2) -> tuple[str, str, int]:
    return (f"{ms / 1000:.3f}", f"curl: (7) Failed to connect to {ip} port {port} after {ms} ms: Connection refused", 7)


ANSWERED = ("0.004512", "", 0)


def _fake_curl(tmp_path: Path, table: dict) -> Path:
    """A curl that logs its arguments, checks it was called as timed_script calls it, and answers
    TABLE[(state, url)] = (what -w %{time_total} prints, its error line on stderr, its exit
    status); STATE is what the fake cluster wrote in TMP_PATH/state ("up" when nothing did), and
    anything else answers. Only sh builtins."""
    cases = "".join(
        f"  '{state} {url}') printf '%s' '{time}'; "
        + (f"printf '%s\\n' '{error}' >&2; " if error else "")
        + f"exit {code} ;;\n"
        for (state, url), (time, error, code) in table.items())
    text = (f"#!/bin/sh\n"
            f"printf '%s\\n' \"$*\" >> {tmp_path}/curl.log\n"
            f"if [ $# -ne 8 ] || [ \"$1 $2 $3 $4 $5 $6 $7\" != '-sS -o /dev/null -m 3 -w %{{time_total}}' ]; then\n"
            f"  printf 'curl: (2) not called as timed_script calls it\\n' >&2; exit 2\n"
            f"fi\n"
            f"state=up; [ -f {tmp_path}/state ] && read -r state < {tmp_path}/state\n"
            f"case \"$state $8\" in\n{cases}  *) printf '%s' '{ANSWERED[0]}'; exit 0 ;;\nesac\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "curl").write_text(text)
    (bin_dir / "curl").chmod(0o755)
    return bin_dir


def _session(script: str, path: str) -> str:
    """SCRIPT's output as the outside client's shell gives it back (outside.Session.run: braces,
    stdin /dev/null, stderr into stdout), checking that the shell goes on after it. The script
    keeps curl's error in /tmp/svclab-err-<the shell's pid>: removed here."""
    proc = subprocess.Popen(["/bin/sh", "-c", f"{{ {script}\n}} </dev/null 2>&1; echo still-here"],
                            env={"PATH": path}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        Path(f"/tmp/svclab-err-{proc.pid}").unlink(missing_ok=True)
    assert proc.returncode == 0 and err == "", err
    assert out.endswith("still-here\n"), out
    return out[:-len("still-here\n")]


def _curls(tmp_path: Path) -> list[str]:
    log = tmp_path / "curl.log"
    return log.read_text().splitlines() if log.exists() else []


def test_script_refused(tmp_path):
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): ("0.002", REFUSED, 7)})
    output = _session(timed_script("172.18.0.2", NODE_PORT), f"{bin_dir}:/usr/bin:/bin")
    assert output == f"0.002 7 {REFUSED}"
    assert parse_timed(output) == {"seconds": 0.002, "status": 7, "error": REFUSED.removeprefix("curl: (7) ")}
    assert _curls(tmp_path) == [f"-sS -o /dev/null -m 3 -w %{{time_total}} {_url('172.18.0.2', NODE_PORT)}"]


def test_script_timed_out_and_no_route(tmp_path):
    bin_dir = _fake_curl(tmp_path, {("up", _url(LB_IP, 80)): ("3.002", TIMED_OUT, 28),
                                    ("up", _url(LB_IP, 8080)): ("3.069", NO_ROUTE, 7)})
    assert parse_timed(_session(timed_script(LB_IP, 80), f"{bin_dir}:/usr/bin:/bin")) == {
        "seconds": 3.002, "status": 28, "error": "Connection timed out after 3002 milliseconds"}
    assert parse_timed(_session(timed_script(LB_IP, 8080), f"{bin_dir}:/usr/bin:/bin")) == {
        "seconds": 3.069, "status": 7, "error": NO_ROUTE.removeprefix("curl: (7) ")}


def test_script_answered(tmp_path):
    bin_dir = _fake_curl(tmp_path, {})
    output = _session(timed_script("172.18.0.2", NODE_PORT), f"{bin_dir}:/usr/bin:/bin")
    assert output == "0.004512 0 "
    assert parse_timed(output) == {"seconds": 0.004512, "status": 0, "error": ""}


def test_script_error_of_an_earlier_request_is_not_read_again(tmp_path):
    """The error file is the shell's, kept between commands (and so between requests): each
    request's redirection empties it."""
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): ("0.002", REFUSED, 7)})
    script = timed_script("172.18.0.2", NODE_PORT) + "; printf '|'; " + timed_script("172.18.0.3", NODE_PORT)
    first, second = _session(script, f"{bin_dir}:/usr/bin:/bin").split("|")
    assert parse_timed(first)["status"] == 7
    assert parse_timed(second) == {"seconds": 0.004512, "status": 0, "error": ""}


def test_script_needs_only_sh_builtins_and_curl(tmp_path):
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): ("0.002", REFUSED, 7)})
    assert parse_timed(_session(timed_script("172.18.0.2", NODE_PORT), str(bin_dir)))["status"] == 7


def test_script_without_curl(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    output = _session(timed_script("172.18.0.2", NODE_PORT), str(empty))
    assert output.startswith(" 127 ") and output.endswith("curl: not found")
    seen = parse_timed(output)
    assert (seen["seconds"], seen["status"]) == (None, None) and seen["error"].endswith("curl: not found")


def test_script_forces_the_port_to_an_integer():
    assert f"http://{LB_IP}:80/hostname 2>/tmp/svclab-err-$$;" in timed_script(LB_IP, "80")
    assert "-m 3 -w '%{time_total}'" in timed_script(LB_IP, 80)
    with pytest.raises(ValueError):
        timed_script(LB_IP, "80; rm -rf /")


# ------------------------------------------------------------------ parse_timed

def test_parse_of_nothing_and_of_garbage():
    assert parse_timed("") == {"seconds": None, "status": None, "error": ""}
    assert parse_timed("garbage\n") == {"seconds": None, "status": None, "error": "garbage"}
    assert parse_timed("x" * 300)["error"] == "x" * 200


def test_parse_keeps_an_error_that_is_not_curls_whole():
    assert parse_timed("0.010 7 Failed to connect") == {"seconds": 0.01, "status": 7, "error": "Failed to connect"}
    assert parse_timed(f"  3.000 28   {TIMED_OUT}  ")["error"] == "Connection timed out after 3002 milliseconds"
    assert len(parse_timed("0.1 7 curl: (7) " + "y" * 300)["error"]) == 200


# ------------------------------------------------------------------ observe, on a fake cluster that scales

class _Kube:
    """A Deployment echo of REPLICAS behind Service echo; scaling it writes the state the fake curl
    reads ("down" with no replica)."""

    def __init__(self, state: Path, replicas: int = 2, ip: str | None = LB_IP):
        self.state, self.replicas, self.ip, self.calls = state, replicas, ip, []
        self.spec_replicas = replicas

    def get(self, api_version, kind, name, namespace=None):
        assert namespace == NAMESPACE and name == "echo"
        if kind == "Deployment":
            return {"metadata": {"name": name}, "spec": {"replicas": self.spec_replicas}}
        return {"metadata": {"name": name, "namespace": namespace},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": NODE_PORT}]},
                "status": {"loadBalancer": {"ingress": [{"ip": self.ip}] if self.ip else []}}}

    def patch(self, api_version, kind, name, body, namespace=None):
        self.replicas = body["spec"]["replicas"]
        self.calls.append(("scale", self.replicas))
        self.state.write_text("down\n" if self.replicas == 0 else "up\n")

    def list(self, api_version, kind, namespace, label_selector=None, field_selector=None):
        if kind == "EndpointSlice":
            assert label_selector == "kubernetes.io/service-name=echo"
            return [{"endpoints": [{"conditions": {"ready": True}}] * self.replicas}]
        return []    # events

    def wait_deployment(self, namespace, name, timeout):
        self.calls.append(("wait", name))


# How the network answers with the Service's pods gone: each node refuses its nodePort at once;
# the external address, no longer announced, is not there at all.
DOWN = {("down", _url(n.ip, NODE_PORT)): _refusal(n.ip, NODE_PORT, 1 + i) for i, n in enumerate(NODES)} | {
    ("down", _url(LB_IP, 80)): ("3.069", NO_ROUTE, 7)}


def _ctx(tmp_path: Path, table: dict = DOWN, *, ip: str | None = LB_IP, run=None):
    bin_dir = _fake_curl(tmp_path, table)
    kube = _Kube(tmp_path / "state", ip=ip)
    return types.SimpleNamespace(
        kube=kube, namespace=NAMESPACE,
        outside=types.SimpleNamespace(run=run or (lambda command, timeout: (0, _session(command, str(bin_dir))))),
        topology=types.SimpleNamespace(nodes=NODES, pool=types.SimpleNamespace(subnet="172.18.0.0/16")),
        settings=types.SimpleNamespace(wait_timeout=4),
        env=types.SimpleNamespace(provider=types.SimpleNamespace(
            name="metallb", expects_address=ip is not None, holder=lambda kube, namespace, service: "dev-worker")))


def _node_port_facts(tmp_path: Path, table: dict = DOWN) -> dict:
    return scale_to_zero.observe(_ctx(tmp_path, table), _probe("no-pod-node-port-refused")).facts


def test_observe_node_ports_refused_then_answering(tmp_path):
    ctx = _ctx(tmp_path)
    probe = _probe("no-pod-node-port-refused")
    seen = scale_to_zero.observe(ctx, probe)
    labels = [f"{n.name} {n.ip}:{NODE_PORT}" for n in NODES]
    assert seen.facts == {
        "refused": [{"target": label, "seconds": (1 + i) / 1000, "status": 7,
                     "error": f"Failed to connect to {n.ip} port {NODE_PORT} after {1 + i} ms: Connection refused"}
                    for i, (label, n) in enumerate(zip(labels, NODES)) for _ in range(3)],
        "after": [{"target": label, "seconds": 0.004512, "status": 0, "error": ""} for label in labels]}
    assert ctx.kube.calls == [("scale", 0), ("scale", 2), ("wait", "echo")]
    assert seen.observed == "refused 6/6 within 2 ms; 2/2 answer after"
    assert seen.evidence[:2] == ["echo: 2 replicas, 2 ready endpoints", "scaled echo to 0: no ready endpoint left"]
    assert seen.evidence[2] == (f"no pod: {labels[0]} → Failed to connect to {NODES[0].ip} port {NODE_PORT} "
                                "after 1 ms: Connection refused after 1 ms")
    assert seen.evidence[-1] == f"scaled back to 2: {labels[0]} answers, {labels[1]} answers"
    assert judge(seen.facts, probe.expectation("metallb")) == []


def test_observe_the_external_address_gone(tmp_path):
    ctx = _ctx(tmp_path)
    probe = _probe("no-pod-external-address")
    seen = scale_to_zero.observe(ctx, probe)
    label = f"external address {LB_IP}:80"
    assert seen.facts == {"refused": [{"target": label, "seconds": 3.069, "status": 7,
                                       "error": NO_ROUTE.removeprefix("curl: (7) ")}] * 3,
                          "after": [{"target": label, "seconds": 0.004512, "status": 0, "error": ""}]}
    assert "metallb reports the address held by node dev-worker" in seen.evidence
    assert judge(seen.facts, probe.expectation("metallb")) == []
    assert judge(seen.facts, probe.expectation("kube-vip")) == [
        f"{label}: {NO_ROUTE.removeprefix('curl: (7) ')} (not refused)"] * 3


def test_observe_without_an_external_address_does_not_scale(tmp_path):
    ctx = _ctx(tmp_path, ip=None)
    probe = _probe("no-pod-external-address")
    seen = scale_to_zero.observe(ctx, probe)
    assert seen.facts == {"refused": [], "after": [], "address": None}
    assert ctx.kube.calls == []
    assert judge(seen.facts, probe.expectation("none")) == []


def test_observe_scales_back_when_asking_fails(tmp_path):
    def broken(command, timeout):
        raise SvclabError("the outside client's shell ended")

    ctx = _ctx(tmp_path, run=broken)
    with pytest.raises(SvclabError, match="shell ended"):
        scale_to_zero.observe(ctx, _probe("no-pod-node-port-refused"))
    assert ctx.kube.calls == [("scale", 0), ("scale", 2)]


# ------------------------------------------------------------------ the judge

def _with(facts: dict, index: int, **sample) -> dict:
    refused = list(facts["refused"])
    refused[index] = refused[index] | sample
    return facts | {"refused": refused}


def test_refused_within_ms(tmp_path):
    facts = _node_port_facts(tmp_path)
    target = facts["refused"][0]["target"]
    expect = Expect(refused_within_ms=500)
    assert judge(facts, expect) == []
    # A node whose rules let the connection hang until curl gave up.
    hung = _with(facts, 0, seconds=3.002, status=28, error="Connection timed out after 3002 milliseconds")
    assert judge(hung, expect) == [f"{target}: Connection timed out after 3002 milliseconds (not refused)"]
    # Refused, but slowly (a retried SYN).
    slow = _with(facts, 0, seconds=1.0123, error=REFUSED.removeprefix("curl: (7) "))
    assert judge(slow, expect) == [f"{target}: refused after 1012 ms"]
    assert judge(slow, Expect(refused_within_ms=1100)) == []
    assert judge(_with(facts, 0, seconds=0.5), expect) == []        # the bound itself is within
    # Status 7 is not a refusal when the address is not there.
    no_route = _with(facts, 0, seconds=3.069, error=NO_ROUTE.removeprefix("curl: (7) "))
    assert judge(no_route, expect) == [f"{target}: {NO_ROUTE.removeprefix('curl: (7) ')} (not refused)"]
    # Answered after all (a pod still serving).
    answered = _with(facts, 0, seconds=0.004, status=0, error="")
    assert judge(answered, expect) == [f"{target}: answered (not refused)"]
    # The output not read at all.
    unread = _with(facts, 0, seconds=None, status=None, error="garbage")
    assert judge(unread, expect) == [f"{target}: garbage (not refused)"]
    assert judge(facts | {"refused": []}, expect) == ["nothing was tried"]


def test_unreachable(tmp_path):
    gone = scale_to_zero.observe(_ctx(tmp_path), _probe("no-pod-external-address")).facts
    refused = _node_port_facts(tmp_path)
    assert judge(gone, Expect(unreachable=True)) == []
    assert judge(refused, Expect(unreachable=True)) == ["6 of 6 connections were answered or refused"]
    # An implementation that kept announcing the address: the node refuses one connection.
    one = _with(gone, 1, seconds=0.002, error=f"Failed to connect to {LB_IP} port 80 after 2 ms: Connection refused")
    assert judge(one, Expect(unreachable=True)) == ["1 of 3 connections were answered or refused"]
    timed_out = _with(gone, 2, seconds=3.002, status=28, error="Connection timed out after 3002 milliseconds")
    assert judge(timed_out, Expect(unreachable=True)) == []           # no answer at all is gone too
    assert judge(_with(gone, 0, status=0, error=""), Expect(unreachable=True)) == [
        "1 of 3 connections were answered or refused"]
    assert judge(gone | {"refused": []}, Expect(unreachable=True)) == ["0 of 0 connections were answered or refused"]
    assert judge(refused, Expect(unreachable=False)) == []
    assert judge(gone, Expect(unreachable=False)) == ["3 of 3 connections found no address"]
    assert judge(one, Expect(unreachable=False)) == ["2 of 3 connections found no address"]


def test_answers_after(tmp_path):
    facts = _node_port_facts(tmp_path)
    assert judge(facts, Expect(answers_after=True)) == []
    still_down = facts | {"after": [facts["after"][0], facts["after"][1] | {"status": 7, "error": "refused"}]}
    assert judge(still_down, Expect(answers_after=True)) == ["1 of 2 targets did not answer after scaling back"]
    assert judge(facts | {"after": []}, Expect(answers_after=True)) == [
        "0 of 0 targets did not answer after scaling back"]
    assert judge(facts, Expect(answers_after=False)) == ["2 of 2 targets answered after scaling back"]
    assert judge(still_down, Expect(answers_after=False)) == ["1 of 2 targets answered after scaling back"]
    dark = facts | {"after": [s | {"status": 7} for s in facts["after"]]}
    assert judge(dark, Expect(answers_after=False)) == []


def test_no_external_address():
    facts = {"refused": [], "after": [], "address": None}
    assert judge(facts, Expect(answers_after=False)) == []
    for expect in (Expect(refused_within_ms=500, answers_after=True), Expect(unreachable=True, answers_after=True),
                   Expect(unreachable=False), Expect(refused_within_ms=500), Expect(answers_after=True)):
        assert judge(facts, expect) == ["no external address"], expect
    # Without the address key, nothing tried is not "no external address".
    assert judge({"refused": [], "after": []}, Expect(refused_within_ms=500)) == ["nothing was tried"]


def test_the_labs_expectations_check_every_key(tmp_path):
    probe = _probe("no-pod-node-port-refused")
    facts = _node_port_facts(tmp_path)
    broken = _with(facts, 3, seconds=3.002, status=28, error="Connection timed out after 3002 milliseconds")
    broken |= {"after": [facts["after"][0] | {"status": 7, "error": "refused"}, facts["after"][1]]}
    assert judge(broken, probe.expectation("metallb")) == [
        f"{facts['refused'][3]['target']}: Connection timed out after 3002 milliseconds (not refused)",
        "1 of 2 targets did not answer after scaling back"]
    gone = scale_to_zero.observe(_ctx(tmp_path), _probe("no-pod-external-address")).facts
    metallb = _probe("no-pod-external-address").expectation("metallb")
    announced = gone | {"refused": [s | {"seconds": 0.001, "error": "Connection refused"} for s in gone["refused"]],
                        "after": [s | {"status": 28} for s in gone["after"]]}
    assert judge(announced, metallb) == ["3 of 3 connections were answered or refused",
                                         "1 of 1 targets did not answer after scaling back"]


# ------------------------------------------------------------------ what the expectations say, the spec

@pytest.mark.parametrize("expect, text", [
    (Expect(refused_within_ms=500, answers_after=True), "refused within 500 ms, answers again when scaled back"),
    (Expect(refused_within_ms=2.5), "refused within 2.5 ms"),
    (Expect(unreachable=True, answers_after=True), "the address is gone (no refusal), answers again when scaled back"),
    (Expect(unreachable=False, answers_after=False), "the address stays, no answer after"),
])
def test_descriptions(expect, text):
    assert expect.describe() == text


def test_predictions_derive_from_the_expectation():
    assert Expect(refused_within_ms=500, answers_after=True).prediction() == Prediction(
        ("refused at once", "hangs until a timeout"), "refused at once")
    assert Expect(unreachable=True, answers_after=True).prediction() is None
    assert Expect(answers_after=False).prediction() is None


def test_never_settles():
    """It scales the Deployment: one look, no retries."""
    for expect in (Expect(refused_within_ms=500), Expect(unreachable=True), Expect(answers_after=True)):
        assert not expect.settles


def _spec(**keys):
    return scale_to_zero.Spec.model_validate({"id": "no-pod-node-port-refused", "claim": "C34", "kind": "scale-to-zero",
                                              "service": "echo", "deployment": "echo", "via": "node-port",
                                              "expect": {"refused_within_ms": 500}} | keys)


def test_spec_defaults_and_bounds():
    spec = _spec()
    assert (spec.tries, spec.changes_cluster()) == (3, True)
    assert [p.changes_cluster() for p in labs.load_lab("no-endpoints").probes] == [False, True, True]
    for bad in ({"tries": 0}, {"tries": 21}, {"via": "cluster-ip"}, {"deployment": "Echo"},
                {"expect": {"refused_within_ms": 0}}, {"expect": {"refused_within_ms": -1}}, {"expect": {}}):
        with pytest.raises(ValueError):
            _spec(**bad)
