"""The scale-to-zero kind, without a cluster: the timed request run for real by this machine's POSIX
sh (dash) inside the braces the outside client's long-lived shell wraps every command in
(outside.py), against a fake curl that answers with curl's verbose log as a node does once a
Service has no ready pod (refused at once), as an address nothing holds does (no route to host, or
no answer until curl's -m), and as a Service with pods does; its output parsed; observe on a fake
cluster that scales (its pods terminating a moment, each node's kube-proxy a moment behind) and
one whose pods are never ready, every request sent from the probe's own outside client; and the judge on the facts of a real `lab.no-endpoints` run on
MetalLB (recorded_facts.json) and on facts made as observe makes them, changed the way a
misbehaving network would change them: each expectation must be able to fail."""

import contextlib
import copy
import json
import shlex
import shutil
import subprocess
import types
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from svclab import labs
from svclab.errors import EXIT_USAGE, SvclabError, UsageError
from svclab.kube import WaitTimeout
from svclab.probes import NodeInfo
from svclab.probes.base import Prediction
from svclab.probes.kinds import scale_to_zero
from svclab.probes.kinds.scale_to_zero import Expect, judge, parse_timed, timed_script

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).parent / "samples"
RECORDED = json.loads((SAMPLES / "recorded_facts.json").read_text())["providers"]
NAMESPACE = "svclab-no-endpoints"
NODES = [NodeInfo("dev-control-plane", "172.18.0.3", "10.244.0.0/24", False),
         NodeInfo("dev-worker", "172.18.0.2", "10.244.1.0/24", True)]
NODE_PORT, STUCK_PORT, LB_IP = 31000, 31001, "172.18.255.200"
CURL_ARGS = "-sS -v -o /dev/null -m 3 -w %{time_total}"
REAL_RM = shutil.which("rm") or "/bin/rm"


# The external address while a Service has no pod is not a probe of the lab (what it does differs
# between implementations and runs, see its README), but observe and judge still serve it.
EXTERNAL_PROBE = {"id": "no-pod-external-address", "claim": "C34", "kind": "scale-to-zero", "service": "echo-scaled",
                  "deployment": "echo", "via": "load-balancer", "expect": {"answers_after": True},
                  "expect_by_provider": {"none": {"answers_after": False}}}


def _probe(probe_id: str):
    if probe_id == EXTERNAL_PROBE["id"]:
        return scale_to_zero.Spec.model_validate(EXTERNAL_PROBE)
    return next(p for p in labs.load_lab("no-endpoints").probes if p.id == probe_id)


def _recorded(probe_id: str) -> dict:
    return next(r["facts"] for r in RECORDED["metallb"] if r["lab"] == "no-endpoints" and r["probe"] == probe_id)


# ------------------------------------------------------------------ curl's verbose logs (curl 7.88 / 8.x)

def _url(ip: str, port: int) -> str:
    return f"http://{ip}:{port}/hostname"


def _refused_log(ip: str, port: int, ms: int) -> list[str]:
    return [f"*   Trying {ip}:{port}...",
            f"* connect to {ip} port {port} failed: Connection refused",
            f"* Failed to connect to {ip} port {port} after {ms} ms: Couldn't connect to server",
            "* Closing connection 0",
            f"curl: (7) Failed to connect to {ip} port {port} after {ms} ms: Couldn't connect to server"]


def _refused_error(ip: str, port: int, ms: int) -> str:
    """What parse_timed makes of _refused_log: curl's line, the kernel's reason appended."""
    return f"Failed to connect to {ip} port {port} after {ms} ms: Couldn't connect to server (Connection refused)"


def _refusal(ip: str, port: int, ms: int = 2) -> tuple[str, list[str], int]:
    return f"{ms / 1000:.6f}", _refused_log(ip, port, ms), 7


# curl before 7.82 put the kernel's reason in its own line: nothing to append.
OLD_REFUSED_LOG = ["*   Trying 172.18.0.2:31000...",
                   "* connect to 172.18.0.2 port 31000 failed: Connection refused",
                   "* Failed to connect to 172.18.0.2 port 31000 after 2 ms: Connection refused",
                   "* Closing connection 0",
                   "curl: (7) Failed to connect to 172.18.0.2 port 31000 after 2 ms: Connection refused"]
NO_ROUTE_LOG = [f"*   Trying {LB_IP}:80...",
                f"* connect to {LB_IP} port 80 failed: No route to host",
                f"* Failed to connect to {LB_IP} port 80 after 3069 ms: Couldn't connect to server",
                "* Closing connection 0",
                f"curl: (7) Failed to connect to {LB_IP} port 80 after 3069 ms: Couldn't connect to server"]
NO_ROUTE = f"Failed to connect to {LB_IP} port 80 after 3069 ms: Couldn't connect to server (No route to host)"
TIMED_OUT_LOG = [f"*   Trying {LB_IP}:80...",
                 "* Connection timed out after 3002 milliseconds",
                 "* Closing connection 0",
                 "curl: (28) Connection timed out after 3002 milliseconds"]
TIMED_OUT = "Connection timed out after 3002 milliseconds"
ANSWERED_TIME = "0.004512"


ANSWERED_LOG = ["*   Trying {host}...", "* Connected to {ip} ({ip}) port {port} (#0)",
                "> GET /hostname HTTP/1.1\r", "> Host: {host}\r", "> User-Agent: curl/7.88.1\r", "> Accept: */*\r",
                "> \r", "< HTTP/1.1 200 OK\r", "< Content-Length: 17\r", "< \r", "{{ [17 bytes data]",
                "* Connection #0 to host {ip} left intact"]


def _answered_log(url: str) -> list[str]:
    host = url.removeprefix("http://").partition("/")[0]
    ip, _, port = host.partition(":")
    return [line.format(host=host, ip=ip, port=port) for line in ANSWERED_LOG]


# ------------------------------------------------------------------ the script, run by sh, with a fake curl

def _fake_curl(tmp_path: Path, table: dict, *, rm: bool = True) -> Path:
    """A curl that logs "<state>: <its arguments>", checks it was called as timed_script calls it,
    and answers TABLE[(state, url)] = (what -w %{time_total} prints, its verbose log on stderr, its
    exit status[, the state it leaves behind]); STATE is what the fake cluster wrote in
    TMP_PATH/state ("up" when nothing did), and anything else answers, with a verbose log too.
    Only sh builtins. With RM, an rm beside it that logs its arguments and runs the real one."""
    cases = ""
    for (state, url), (time, log, code, *then) in table.items():
        cases += f"  {shlex.quote(f'{state} {url}')}) printf '%s' {shlex.quote(time)}; "
        cases += "printf '%s\\n' " + " ".join(map(shlex.quote, log)) + " >&2; " if log else ""
        cases += f"printf '%s\\n' {shlex.quote(then[0])} > {tmp_path}/state; " if then else ""
        cases += f"exit {code} ;;\n"
    answered = " ".join(f'"{line.format(host="$host", ip="$ip", port="$port")}"' for line in ANSWERED_LOG)
    text = (f"#!/bin/sh\n"
            f"state=up; [ -f {tmp_path}/state ] && read -r state < {tmp_path}/state\n"
            f"printf '%s: %s\\n' \"$state\" \"$*\" >> {tmp_path}/curl.log\n"
            f"if [ $# -ne 9 ] || [ \"$1 $2 $3 $4 $5 $6 $7 $8\" != '{CURL_ARGS}' ]; then\n"
            f"  printf 'curl: (2) not called as timed_script calls it\\n' >&2; exit 2\n"
            f"fi\n"
            f"case \"$state $9\" in\n{cases}"
            f"  *) host=${{9#http://}}; host=${{host%%/*}}; ip=${{host%:*}}; port=${{host#*:}}\n"
            f"     printf '%s' '{ANSWERED_TIME}'; printf '%s\\n' {answered} >&2; exit 0 ;;\nesac\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "curl").write_text(text)
    (bin_dir / "curl").chmod(0o755)
    if rm:
        (bin_dir / "rm").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {tmp_path}/rm.log\nexec {REAL_RM} \"$@\"\n")
        (bin_dir / "rm").chmod(0o755)
    return bin_dir


def _shell(script: str, path: str) -> tuple[str, int, bool]:
    """SCRIPT's output as the outside client's shell gives it back (outside.Session.run: braces,
    stdin /dev/null, stderr into stdout), checking that the shell goes on after it; the shell's
    pid; whether the script left its curl log /tmp/svclab-err-<pid> behind (removed here)."""
    proc = subprocess.Popen(["/bin/sh", "-c", f"{{ {script}\n}} </dev/null 2>&1; echo still-here"],
                            env={"PATH": path}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = Path(f"/tmp/svclab-err-{proc.pid}")
    try:
        out, err = (stream.decode(errors="replace") for stream in proc.communicate(timeout=60))
    finally:
        left = log.exists()
        log.unlink(missing_ok=True)
    assert proc.returncode == 0 and err == "", err
    assert out.endswith("still-here\n"), out
    return out[:-len("still-here\n")], proc.pid, left


def _session(script: str, path: str) -> str:
    output, _, left = _shell(script, path)
    assert not left, "the script left its curl log behind"
    return output


def _lines(tmp_path: Path, name: str) -> list[str]:
    log = tmp_path / name
    return log.read_text().splitlines() if log.exists() else []


def _curls(tmp_path: Path) -> list[str]:
    return _lines(tmp_path, "curl.log")


def _asked(state: str, ip: str, port: int) -> str:
    return f"{state}: {CURL_ARGS} {_url(ip, port)}"


def test_script_refused(tmp_path):
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): _refusal("172.18.0.2", NODE_PORT)})
    output, pid, left = _shell(timed_script("172.18.0.2", NODE_PORT), f"{bin_dir}:/usr/bin:/bin")
    assert output == "0.002000 7\n" + "".join(f"{line}\n" for line in _refused_log("172.18.0.2", NODE_PORT, 2))
    assert parse_timed(output) == {"seconds": 0.002, "status": 7, "error": _refused_error("172.18.0.2", NODE_PORT, 2)}
    assert _curls(tmp_path) == [_asked("up", "172.18.0.2", NODE_PORT)]
    assert _lines(tmp_path, "rm.log") == [f"-f /tmp/svclab-err-{pid}"] and not left
    assert scale_to_zero._refused(parse_timed(output))


def test_script_refused_by_a_curl_that_names_the_reason_itself(tmp_path):
    """curl before 7.82 ends with "...: Connection refused": nothing is appended twice."""
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): ("0.002000", OLD_REFUSED_LOG, 7)})
    seen = parse_timed(_session(timed_script("172.18.0.2", NODE_PORT), f"{bin_dir}:/usr/bin:/bin"))
    assert seen == {"seconds": 0.002, "status": 7,
                    "error": "Failed to connect to 172.18.0.2 port 31000 after 2 ms: Connection refused"}
    assert scale_to_zero._refused(seen)


def test_script_timed_out_and_no_route(tmp_path):
    bin_dir = _fake_curl(tmp_path, {("up", _url(LB_IP, 80)): ("3.002000", TIMED_OUT_LOG, 28),
                                    ("up", _url(LB_IP, 8080)): ("3.069000", NO_ROUTE_LOG, 7)})
    timed_out = parse_timed(_session(timed_script(LB_IP, 80), f"{bin_dir}:/usr/bin:/bin"))
    assert timed_out == {"seconds": 3.002, "status": 28, "error": TIMED_OUT}
    no_route = parse_timed(_session(timed_script(LB_IP, 8080), f"{bin_dir}:/usr/bin:/bin"))
    assert no_route == {"seconds": 3.069, "status": 7, "error": NO_ROUTE}
    # Status 7 with the kernel's "No route to host" is no refusal; nor is a timeout.
    assert not scale_to_zero._refused(no_route) and not scale_to_zero._refused(timed_out)


def test_script_answered(tmp_path):
    bin_dir = _fake_curl(tmp_path, {})
    output = _session(timed_script("172.18.0.2", NODE_PORT), f"{bin_dir}:/usr/bin:/bin")
    url = _url("172.18.0.2", NODE_PORT)
    assert output == f"{ANSWERED_TIME} 0\n" + "".join(f"{line}\n" for line in _answered_log(url))
    assert parse_timed(output) == {"seconds": 0.004512, "status": 0, "error": ""}


def test_script_error_of_an_earlier_request_is_not_read_again(tmp_path):
    """The log file is the shell's ($$), kept between commands (and so between requests) were it
    not removed: each request's redirection empties it anyway."""
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): _refusal("172.18.0.2", NODE_PORT)})
    script = timed_script("172.18.0.2", NODE_PORT) + "; printf '|'; " + timed_script("172.18.0.3", NODE_PORT)
    first, second = _session(script, f"{bin_dir}:/usr/bin:/bin").split("|")
    assert parse_timed(first)["status"] == 7
    assert parse_timed(second) == {"seconds": 0.004512, "status": 0, "error": ""}
    assert "Connection refused" not in second and "172.18.0.2" not in second


def test_script_needs_only_sh_builtins_curl_and_rm(tmp_path):
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): _refusal("172.18.0.2", NODE_PORT)})
    assert parse_timed(_session(timed_script("172.18.0.2", NODE_PORT), str(bin_dir)))["status"] == 7


def test_script_without_rm_still_reads_but_leaves_its_log(tmp_path):
    """An image without rm: the shell's complaint follows curl's log, which is read all the same."""
    bin_dir = _fake_curl(tmp_path, {("up", _url("172.18.0.2", NODE_PORT)): _refusal("172.18.0.2", NODE_PORT)},
                         rm=False)
    output, _, left = _shell(timed_script("172.18.0.2", NODE_PORT), str(bin_dir))
    assert left and output.endswith("rm: not found\n")
    assert parse_timed(output) == {"seconds": 0.002, "status": 7, "error": _refused_error("172.18.0.2", NODE_PORT, 2)}


def test_script_without_curl(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    output, _, left = _shell(timed_script("172.18.0.2", NODE_PORT), str(empty))
    assert output.startswith(" 127\n") and "curl: not found\n" in output and left
    seen = parse_timed(output)
    assert (seen["seconds"], seen["status"]) == (None, None) and "curl: not found" in seen["error"]


def test_script_forces_the_port_to_an_integer():
    assert f"http://{LB_IP}:80/hostname 2>/tmp/svclab-err-$$;" in timed_script(LB_IP, "80")
    assert "curl -sS -v -o /dev/null -m 3 -w '%{time_total}' " in timed_script(LB_IP, 80)
    with pytest.raises(ValueError):
        timed_script(LB_IP, "80; rm -rf /")


# ------------------------------------------------------------------ parse_timed

def test_parse_of_nothing_and_of_garbage():
    assert parse_timed("") == {"seconds": None, "status": None, "error": ""}
    assert parse_timed("garbage\n") == {"seconds": None, "status": None, "error": "garbage"}
    assert parse_timed("x" * 300)["error"] == "x" * 200


def test_parse_a_failure_without_curls_line():
    """No "curl: (N)" line (a log cut short): the status says what failed."""
    assert parse_timed("0.010 7\n*   Trying 172.18.0.2:31000...\n") == {
        "seconds": 0.01, "status": 7, "error": "curl exited 7"}
    assert parse_timed("0.010 7") == {"seconds": 0.01, "status": 7, "error": "curl exited 7"}


def test_parse_takes_curls_last_line_and_the_kernels_reason():
    log = ["*   Trying 10.96.0.10:80...", "* Immediate connect fail for 10.96.0.10: Network is unreachable",
           "* Failed to connect to 10.96.0.10 port 80 after 0 ms: Couldn't connect to server", "* Closing connection 0",
           "curl: (7) Failed to connect to 10.96.0.10 port 80 after 0 ms: Couldn't connect to server"]
    seen = parse_timed("  0.000210 7\n" + "\n".join(log) + "\n")
    assert seen == {"seconds": 0.00021, "status": 7, "error": "Failed to connect to 10.96.0.10 port 80 after 0 ms: "
                                                             "Couldn't connect to server (Network is unreachable)"}
    assert not scale_to_zero._refused(seen)
    assert parse_timed("3.000 28\n" + "\n".join(TIMED_OUT_LOG) + "\n")["error"] == TIMED_OUT
    assert len(parse_timed("0.1 7\ncurl: (7) " + "y" * 300)["error"]) == 200
    # An answer has no error, whatever its log says.
    assert parse_timed("0.004 0\n* Connected\ncurl: (7) stale\n")["error"] == ""


def test_the_fake_refusal_reads_as_the_real_runs_did():
    """The errors observe records in the real run have the shape parse_timed makes of the fake log."""
    for probe_id in ("not-ready-refused", "no-pod-node-port-refused"):
        for sample in _recorded(probe_id)["refused"]:
            ip, port = sample["target"].rsplit(" ", 1)[1].split(":")
            ms = round(sample["seconds"] * 1000)
            assert sample["error"] == _refused_error(ip, int(port), ms), sample
            assert scale_to_zero._refused(sample)


# ------------------------------------------------------------------ observe, on a fake cluster

class _Kube:
    """Deployment echo of 2 behind Service echo-scaled (LoadBalancer); Deployment stuck of 1 behind
    Service stuck (NodePort), its pod never ready. Scaling echo to zero leaves its pods terminating
    (not ready, still endpoints, still serving) for LINGER looks at the EndpointSlices, then none;
    the state the fake curl reads goes "terminating", then "stale" (kube-proxy a moment behind),
    "up" when scaled back. STUCK: stuck's (endpoints, ready) at each look, the last repeated."""

    def __init__(self, state: Path, *, ip: str | None = LB_IP, linger: int = 1,
                 stuck: list[tuple[int, int]] | None = None):
        self.state, self.ip, self.linger, self.calls, self.looks = state, ip, linger, [], []
        self.replicas, self.terminating = 2, 0
        self.stuck = list(stuck or [(0, 0), (1, 0)])

    def get(self, api_version, kind, name, namespace=None):
        assert namespace == NAMESPACE and name in (("echo", "stuck") if kind == "Deployment" else ("echo-scaled", "stuck"))
        if kind == "Deployment":
            return {"metadata": {"name": name}, "spec": {"replicas": 2 if name == "echo" else 1}}
        if name == "stuck":
            return {"metadata": {"name": name, "namespace": namespace},
                    "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": STUCK_PORT}]}, "status": {}}
        return {"metadata": {"name": name, "namespace": namespace},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": NODE_PORT}]},
                "status": {"loadBalancer": {"ingress": [{"ip": self.ip}] if self.ip else []}}}

    def patch(self, api_version, kind, name, body, namespace=None):
        assert (kind, name, namespace) == ("Deployment", "echo", NAMESPACE)
        self.replicas = body["spec"]["replicas"]
        self.calls.append(("scale", self.replicas))
        self.terminating = self.linger if self.replicas == 0 else 0
        self._write("up" if self.replicas else "terminating" if self.terminating else "stale")

    def list(self, api_version, kind, namespace, label_selector=None, field_selector=None):
        if kind != "EndpointSlice":
            return []    # events
        assert (api_version, namespace) == ("discovery.k8s.io/v1", NAMESPACE)
        name = label_selector.removeprefix("kubernetes.io/service-name=")
        self.looks.append(name)
        if name == "stuck":
            total, ready = self.stuck.pop(0) if len(self.stuck) > 1 else self.stuck[0]
            return [{"endpoints": [{"conditions": {"ready": i < ready, "serving": i < ready}} for i in range(total)]}]
        assert name == "echo-scaled"
        if self.replicas:
            return [{"endpoints": [{"conditions": {"ready": True}}] * self.replicas}]
        if self.terminating:
            self.terminating -= 1
            return [{"endpoints": [{"conditions": {"ready": False, "serving": True, "terminating": True}}] * 2}]
        if self.state.read_text() == "terminating\n":
            self._write("stale")
        return [{"endpoints": None}]

    def wait_deployment(self, namespace, name, timeout):
        self.calls.append(("wait", name))

    def _write(self, state: str) -> None:
        self.state.write_text(f"{state}\n")


def _stale(urls, then: str) -> dict:
    """Kube-proxy not yet caught up: the first connection goes to a vanished pod and hangs."""
    return {("stale", url): ("3.002000", TIMED_OUT_LOG, 28, then) for url in urls}


NODE_URLS = [_url(n.ip, NODE_PORT) for n in NODES]
STUCK_URLS = [_url(n.ip, STUCK_PORT) for n in NODES]
# How the network answers with echo's pods gone: each node refuses its nodePort at once; the
# external address, no longer announced, is not there at all. Stuck's nodePorts refuse throughout.
DOWN = (_stale([*NODE_URLS, _url(LB_IP, 80)], "down")
        | {("down", _url(n.ip, NODE_PORT)): _refusal(n.ip, NODE_PORT, 1 + i) for i, n in enumerate(NODES)}
        | {("down", _url(LB_IP, 80)): ("3.069000", NO_ROUTE_LOG, 7)}
        | _stale(STUCK_URLS, "up")
        | {(state, _url(n.ip, STUCK_PORT)): _refusal(n.ip, STUCK_PORT, 1 + i)
           for state in ("up", "down") for i, n in enumerate(NODES)})


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch):
    """A target that never refuses (the address gone) would take SETTLE seconds of tries, and the
    tries are spaced ICMP_GAP apart for the kernel's ICMP rate limit; neither matters with fakes."""
    monkeypatch.setattr(scale_to_zero, "SETTLE", 0.2)
    monkeypatch.setattr(scale_to_zero, "ICMP_GAP", 0.0)


@pytest.fixture(autouse=True)
def own_client(monkeypatch):
    """The probe's own outside client is the fake ctx.refusals (its container needs Docker)."""
    monkeypatch.setattr(scale_to_zero, "own_client", lambda ctx: contextlib.nullcontext(ctx.refusals))


def _shared_client(command, timeout):
    pytest.fail("sent from the outside client every probe shares, not from the probe's own")


def _ctx(tmp_path: Path, table: dict = DOWN, *, ip: str | None = LB_IP, run=None, wait: float = 4, **kube):
    bin_dir = _fake_curl(tmp_path, table)
    return types.SimpleNamespace(
        kube=_Kube(tmp_path / "state", ip=ip, **kube), namespace=NAMESPACE,
        outside=types.SimpleNamespace(run=_shared_client),
        refusals=types.SimpleNamespace(run=run or (lambda command, timeout: (0, _session(command, str(bin_dir))))),
        topology=types.SimpleNamespace(nodes=NODES, pool=types.SimpleNamespace(subnet="172.18.0.0/16")),
        settings=types.SimpleNamespace(wait_timeout=wait),
        env=types.SimpleNamespace(provider=types.SimpleNamespace(
            name="metallb", expects_address=True, holder=lambda kube, namespace, service: "dev-worker")))


LABELS = [f"{n.name} {n.ip}:{NODE_PORT}" for n in NODES]
STUCK_LABELS = [f"{n.name} {n.ip}:{STUCK_PORT}" for n in NODES]
EXTERNAL = f"external address {LB_IP}:80"


def _patient_settle(monkeypatch):
    """Where the fake refuses soon, the settle ends at the refusal: give it time enough that a
    loaded machine, whose first try can take longer than quick_settle's 0.2 s, still sees it."""
    monkeypatch.setattr(scale_to_zero, "SETTLE", 10)


def test_observe_node_ports_refused_then_answering(tmp_path, monkeypatch):
    _patient_settle(monkeypatch)
    ctx = _ctx(tmp_path)
    probe = _probe("no-pod-node-port-refused")
    seen = scale_to_zero.observe(ctx, probe)
    errors = [_refused_error(n.ip, NODE_PORT, 1 + i) for i, n in enumerate(NODES)]
    assert seen.facts == {
        "refused": [{"target": label, "seconds": (1 + i) / 1000, "status": 7, "error": errors[i]}
                    for i, label in enumerate(LABELS) for _ in range(3)],
        "after": [{"target": label, "seconds": 0.004512, "status": 0, "error": ""} for label in LABELS]}
    assert ctx.kube.calls == [("scale", 0), ("scale", 2), ("wait", "echo")]
    assert ctx.kube.looks == ["echo-scaled"] * 3  # before scaling, the pods terminating, none
    assert seen.observed == "refused 6/6, slowest 2 ms; 2/2 answer after"
    assert seen.evidence == [
        "echo: 2 replicas; Service echo-scaled: 2 endpoints, 2 ready",
        "scaled echo to 0: no endpoint left (not even a terminating pod)",
        *[f"no ready pod: {label} → {errors[i]} ({1 + i} ms)" for i, label in enumerate(LABELS) for _ in range(3)],
        f"scaled back to 2: {LABELS[0]} answers, {LABELS[1]} answers"]
    # Nothing asked while the terminating pods were endpoints; the first node's first try, before
    # its kube-proxy caught up, hung and is not recorded; each target then refused at once.
    # Then the three tries go round the nodes.
    assert _curls(tmp_path) == [_asked("stale", NODES[0].ip, NODE_PORT), _asked("down", NODES[0].ip, NODE_PORT),
                                _asked("down", NODES[1].ip, NODE_PORT),
                                *[_asked("down", n.ip, NODE_PORT) for n in NODES] * 3,
                                _asked("up", NODES[0].ip, NODE_PORT), _asked("up", NODES[1].ip, NODE_PORT)]
    assert judge(seen.facts, probe.expectation("metallb")) == []


def test_observe_the_external_address_gone(tmp_path):
    ctx = _ctx(tmp_path, linger=0)
    probe = _probe("no-pod-external-address")
    seen = scale_to_zero.observe(ctx, probe)
    assert seen.facts == {"refused": [{"target": EXTERNAL, "seconds": 3.069, "status": 7, "error": NO_ROUTE}] * 3,
                          "after": [{"target": EXTERNAL, "seconds": 0.004512, "status": 0, "error": ""}]}
    assert seen.observed == "refused 0/3, slowest 3069 ms; 1/1 answer after"
    assert seen.evidence[2:] == [f"no ready pod: {EXTERNAL} → {NO_ROUTE} (3069 ms)"] * 3 + [
        "metallb reports the address held by node dev-worker", f"scaled back to 2: {EXTERNAL} answers"]
    # No refusal ever comes: it tried for SETTLE (here 0.2 s), then recorded its three tries.
    asked = _curls(tmp_path)
    assert asked[0] == _asked("stale", LB_IP, 80) and asked[-1] == _asked("up", LB_IP, 80)
    # (How many settle tries fit in 0.2 s depends on the machine's load: at least one, and a bounded number.)
    assert set(asked[1:-1]) == {_asked("down", LB_IP, 80)} and 3 + 1 <= len(asked[1:-1]) <= 3 + 50
    assert judge(seen.facts, probe.expectation("metallb")) == []
    assert judge(seen.facts, probe.expectation("kube-vip")) == []
    assert judge(seen.facts, probe.expectation("none")) == ["1 of 1 targets answered after scaling back"]


def test_observe_without_an_external_address_does_not_scale(tmp_path):
    ctx = _ctx(tmp_path, ip=None, wait=0)     # (the provider's wait for an address, cut short)
    probe = _probe("no-pod-external-address")
    seen = scale_to_zero.observe(ctx, probe)
    assert seen.facts == {"refused": [], "after": [], "address": None}
    assert (seen.observed, ctx.kube.calls, _curls(tmp_path)) == ("no external address", [], [])
    assert judge(seen.facts, probe.expectation("none")) == []
    assert judge(seen.facts, probe.expectation("metallb")) == ["no external address"]


def test_observe_scales_back_when_asking_fails(tmp_path):
    def broken(command, timeout):
        raise SvclabError("the outside client's shell ended")

    ctx = _ctx(tmp_path, run=broken, linger=0)
    with pytest.raises(SvclabError, match="shell ended"):
        scale_to_zero.observe(ctx, _probe("no-pod-node-port-refused"))
    assert ctx.kube.calls == [("scale", 0), ("scale", 2)]


def test_observe_scales_back_when_the_endpoints_stay(tmp_path):
    ctx = _ctx(tmp_path, linger=100, wait=0)
    with pytest.raises(WaitTimeout, match="waiting for Service echo-scaled to lose its endpoints"):
        scale_to_zero.observe(ctx, _probe("no-pod-node-port-refused"))
    assert (ctx.kube.calls, _curls(tmp_path)) == ([("scale", 0), ("scale", 2)], [])


def test_observe_refuses_a_deployment_at_zero(tmp_path):
    ctx = _ctx(tmp_path)
    ctx.kube.get = lambda api_version, kind, name, namespace=None: {"spec": {"replicas": 0}}
    with pytest.raises(SvclabError, match="Deployment echo is already at zero replicas"):
        scale_to_zero.observe(ctx, _probe("no-pod-node-port-refused"))
    assert ctx.kube.calls == []


# ------------------------------------------------------------------ observe, pods: not-ready

def test_observe_not_ready_changes_nothing(tmp_path, monkeypatch):
    _patient_settle(monkeypatch)
    (tmp_path / "state").write_text("stale\n")     # the pod just turned unready: kube-proxy behind
    ctx = _ctx(tmp_path, stuck=[(0, 0), (0, 0), (1, 0)])
    probe = _probe("not-ready-refused")
    seen = scale_to_zero.observe(ctx, probe)
    errors = [_refused_error(n.ip, STUCK_PORT, 1 + i) for i, n in enumerate(NODES)]
    assert seen.facts == {"refused": [{"target": label, "seconds": (1 + i) / 1000, "status": 7, "error": errors[i]}
                                      for i, label in enumerate(STUCK_LABELS) for _ in range(3)],
                          "after": []}
    assert (ctx.kube.calls, ctx.kube.looks) == ([], ["stuck"] * 3)
    assert seen.observed == "refused 6/6, slowest 2 ms"
    # Listed only at the third look: it waited for the pod to be an endpoint.
    assert seen.evidence == [
        "stuck: 1 replicas; Service stuck: 0 endpoints, 0 ready",
        "Service stuck: 1 endpoints (pods running), none ready",
        *[f"no ready pod: {label} → {errors[i]} ({1 + i} ms)"
          for i, label in enumerate(STUCK_LABELS) for _ in range(3)]]
    assert _curls(tmp_path) == [_asked("stale", NODES[0].ip, STUCK_PORT), _asked("up", NODES[0].ip, STUCK_PORT),
                                _asked("up", NODES[1].ip, STUCK_PORT), *[_asked("up", n.ip, STUCK_PORT) for n in NODES] * 3]
    assert judge(seen.facts, probe.expectation("metallb")) == []


@pytest.mark.parametrize("stuck, counts", [([(1, 1)], "1 endpoints, 1 ready"), ([(0, 0)], "0 endpoints, 0 ready"),
                                           ([(0, 0), (2, 1)], "2 endpoints, 1 ready")])
def test_observe_not_ready_needs_pods_listed_none_ready(tmp_path, stuck, counts):
    ctx = _ctx(tmp_path, wait=0, stuck=stuck)
    with pytest.raises(SvclabError) as caught:
        scale_to_zero.observe(ctx, _probe("not-ready-refused"))
    assert str(caught.value) == f"Service stuck did not come to list pods none of which is ready ({counts})"
    assert (ctx.kube.calls, _curls(tmp_path)) == ([], [])


# ------------------------------------------------------------------ the judge

@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Facts as observe makes them: echo's nodePorts refused, its external address gone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scale_to_zero, "SETTLE", 0.2)
        patch.setattr(scale_to_zero, "ICMP_GAP", 0.0)
        patch.setattr(scale_to_zero, "own_client", lambda ctx: contextlib.nullcontext(ctx.refusals))
        return {probe_id: scale_to_zero.observe(_ctx(tmp_path_factory.mktemp(probe_id), linger=0),
                                                _probe(probe_id)).facts
                for probe_id in ("no-pod-node-port-refused", "no-pod-external-address")}


def _with(facts: dict, index: int, **sample) -> dict:
    refused = list(facts["refused"])
    refused[index] = refused[index] | sample
    return facts | {"refused": refused}


def _all_of_target(facts: dict, index: int, **sample) -> dict:
    """Every try at the target of try INDEX changed so."""
    target = facts["refused"][index]["target"]
    return facts | {"refused": [s | sample if s["target"] == target else s for s in facts["refused"]]}


def test_refused_within_ms(made):
    facts = made["no-pod-node-port-refused"]
    target = facts["refused"][0]["target"]
    expect = Expect(refused_within_ms=500)
    assert judge(facts, expect) == []
    # A node whose rules let the connection hang until curl gave up.
    hung = _with(facts, 0, seconds=3.002, status=28, error=TIMED_OUT)
    assert judge(hung, expect) == [f"{target}: {TIMED_OUT} (not refused)"]
    # One try refused slowly (a retried SYN) leaves the median alone; every try slow does not.
    assert judge(_with(facts, 0, seconds=1.0123), expect) == []
    slow = _all_of_target(facts, 0, seconds=1.0123)
    assert judge(slow, expect) == [f"{target}: refused after a median 1012 ms"]
    assert judge(slow, Expect(refused_within_ms=1100)) == []
    assert judge(_all_of_target(facts, 0, seconds=0.5), expect) == []        # the bound itself is within
    # Status 7 is not a refusal when the address is not there.
    no_route = _with(facts, 0, seconds=3.069, error=NO_ROUTE)
    assert judge(no_route, expect) == [f"{target}: {NO_ROUTE} (not refused)"]
    # A refusal needs status 7: curl's message with another status is not one.
    assert judge(_with(facts, 0, status=56), expect) == [f"{target}: {facts['refused'][0]['error']} (not refused)"]
    # Answered after all (a pod still serving).
    answered = _with(facts, 0, seconds=0.004, status=0, error="")
    assert judge(answered, expect) == [f"{target}: answered (not refused)"]
    # The output not read at all.
    unread = _with(facts, 0, seconds=None, status=None, error="garbage")
    assert judge(unread, expect) == [f"{target}: garbage (not refused)"]
    assert judge(facts | {"refused": []}, expect) == ["nothing was tried"]


def test_unreachable(made):
    gone, refused = made["no-pod-external-address"], made["no-pod-node-port-refused"]
    assert judge(gone, Expect(unreachable=True)) == []
    assert judge(refused, Expect(unreachable=True)) == ["6 of 6 connections were answered or refused"]
    # An implementation that kept announcing the address: the node refuses one connection.
    one = _with(gone, 1, seconds=0.002, error=_refused_error(LB_IP, 80, 2))
    assert judge(one, Expect(unreachable=True)) == ["1 of 3 connections were answered or refused"]
    timed_out = _with(gone, 2, seconds=3.002, status=28, error=TIMED_OUT)
    assert judge(timed_out, Expect(unreachable=True)) == []           # no answer at all is gone too
    assert judge(_with(gone, 0, status=0, error=""), Expect(unreachable=True)) == [
        "1 of 3 connections were answered or refused"]
    assert judge(gone | {"refused": []}, Expect(unreachable=True)) == ["0 of 0 connections were answered or refused"]
    assert judge(refused, Expect(unreachable=False)) == []
    assert judge(gone, Expect(unreachable=False)) == ["3 of 3 connections found no address"]
    assert judge(one, Expect(unreachable=False)) == ["2 of 3 connections found no address"]


def test_answers_after(made):
    facts = made["no-pod-node-port-refused"]
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


def test_the_labs_expectations():
    """What labs/no-endpoints/lab.yaml asks of each provider."""
    ask = {p.id: {provider: p.expectation(provider).given() for provider in ("metallb", "kube-vip", "none")}
           for p in labs.load_lab("no-endpoints").probes}
    assert ask == {
        "not-ready-refused": dict.fromkeys(("metallb", "kube-vip", "none"), {"refused_within_ms": 500}),
        "no-pod-node-port-refused": dict.fromkeys(("metallb", "kube-vip", "none"),
                                                  {"refused_within_ms": 500, "answers_after": True})}
    assert [(p.service, p.deployment, p.via, p.pods) for p in labs.load_lab("no-endpoints").probes] == [
        ("stuck", "stuck", "node-port", "not-ready"), ("echo-scaled", "echo", "node-port", "none")]


def test_the_labs_expectations_check_every_key_on_the_recorded_run():
    not_ready, metallb = _recorded("not-ready-refused"), _probe("not-ready-refused").expectation("metallb")
    assert judge(not_ready, metallb) == []
    assert scale_to_zero._summary(not_ready["refused"], not_ready["after"]) == "refused 9/9, slowest 0 ms"
    target = not_ready["refused"][4]["target"]
    assert judge(_with(not_ready, 4, seconds=3.002, status=28, error=TIMED_OUT), metallb) == [
        f"{target}: {TIMED_OUT} (not refused)"]
    assert judge(_all_of_target(not_ready, 4, seconds=0.6), metallb) == [f"{target}: refused after a median 600 ms"]
    assert judge(_with(not_ready, 4, seconds=0.002, status=0, error=""), metallb) == [
        f"{target}: answered (not refused)"]

    node_port = _recorded("no-pod-node-port-refused")
    metallb = _probe("no-pod-node-port-refused").expectation("metallb")
    assert judge(node_port, metallb) == []
    assert scale_to_zero._summary(node_port["refused"], node_port["after"]) == \
        "refused 9/9, slowest 0 ms; 3/3 answer after"
    broken = _with(node_port, 3, seconds=3.002, status=28, error=TIMED_OUT)
    broken |= {"after": [node_port["after"][0] | {"status": 7, "error": "refused"}, *node_port["after"][1:]]}
    assert judge(broken, metallb) == [f"{node_port['refused'][3]['target']}: {TIMED_OUT} (not refused)",
                                      "1 of 3 targets did not answer after scaling back"]


def test_made_facts_fail_the_labs_expectations_where_the_network_misbehaves(made):
    gone, metallb = made["no-pod-external-address"], _probe("no-pod-external-address").expectation("metallb")
    announced = gone | {"after": [s | {"status": 28} for s in gone["after"]]}
    assert judge(announced, metallb) == ["1 of 1 targets did not answer after scaling back"]
    assert judge(gone, _probe("no-pod-node-port-refused").expectation("metallb")) == [
        f"{EXTERNAL}: {NO_ROUTE} (not refused)"] * 3


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
    assert (spec.tries, spec.pods, spec.changes_cluster()) == (3, "none", True)
    assert not _spec(pods="not-ready").changes_cluster()
    assert [p.changes_cluster() for p in labs.load_lab("no-endpoints").probes] == [False, True]
    for bad in ({"tries": 0}, {"tries": 21}, {"via": "cluster-ip"}, {"deployment": "Echo"}, {"pods": "gone"},
                {"expect": {"refused_within_ms": 0}}, {"expect": {"refused_within_ms": -1}}, {"expect": {}}):
        with pytest.raises(ValueError):
            _spec(**bad)


NOT_READY_NEEDS_NONE = "expect.answers_after needs pods: none (the probe scales back only what it scaled)"


def test_answers_after_needs_pods_none():
    assert _spec(expect={"answers_after": True}).pods == "none"
    assert _spec(pods="not-ready", expect={"refused_within_ms": 500, "unreachable": False}).pods == "not-ready"
    for keys in ({"expect": {"answers_after": True}}, {"expect": {"refused_within_ms": 500, "answers_after": False}},
                 {"expect_by_provider": {"none": {"answers_after": False}}}):
        with pytest.raises(ValidationError, match=NOT_READY_NEEDS_NONE.replace("(", r"\(").replace(")", r"\)")):
            _spec(pods="not-ready", **keys)


def _lab_refusal(change) -> str:
    data = yaml.safe_load((ROOT / "labs" / "no-endpoints" / "lab.yaml").read_text())
    change(data)
    source = "labs/no-endpoints/lab.yaml"
    with pytest.raises(UsageError) as caught:
        labs.parse_lab("no-endpoints", copy.deepcopy(data), ROOT / "labs" / "no-endpoints", source=source)
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE and "\n" not in message and message.startswith(source + ": ")
    return message.removeprefix(source + ": ")


def _not_ready(data) -> dict:
    return next(p for p in data["probes"] if p["id"] == "not-ready-refused")


def test_the_lab_refuses_answers_after_with_pods_not_ready_in_one_line():
    assert _lab_refusal(lambda d: _not_ready(d)["expect"].update(answers_after=True)) == \
        f"probe 'not-ready-refused': {NOT_READY_NEEDS_NONE}"
    assert _lab_refusal(lambda d: _not_ready(d).update(expect_by_provider={"kube-vip": {"answers_after": True}})) == \
        f"probe 'not-ready-refused': {NOT_READY_NEEDS_NONE}"
    assert _lab_refusal(lambda d: _not_ready(d).update(pods="unready")) == \
        "probe 'not-ready-refused': pods must be one of none, not-ready, got 'unready' (did you mean 'not-ready'?)"


def test_tries_go_round_the_nodes_and_space_only_each_node_s_own(monkeypatch):
    """The kernel limits each node's ICMP errors to the client on its own: one node's tries are
    ICMP_GAP apart, while the other nodes are asked in between."""
    import time

    monkeypatch.setattr(scale_to_zero, "ICMP_GAP", 0.2)
    asked = []

    def once(ctx, client, label, ip, port):
        asked.append((label, time.monotonic()))
        return {"target": label, "seconds": 0.001, "status": 7, "error": "Connection refused"}

    monkeypatch.setattr(scale_to_zero, "_once", once)
    targets = [(f"node{i}", f"172.18.0.{i}", NODE_PORT) for i in (2, 3, 4)]
    seen = scale_to_zero._ask(None, None, targets, 3, settle=1)
    settle, tries = asked[:3], asked[3:]
    assert [label for label, _ in settle] == ["node2", "node3", "node4"]   # each refused at its first
    assert [label for label, _ in tries] == ["node2", "node3", "node4"] * 3
    for label, _, _ in targets:
        times = [t for name, t in asked if name == label]
        assert all(later - earlier >= 0.2 for earlier, later in zip(times, times[1:])), (label, times)
    assert [s["target"] for s in seen] == ["node2"] * 3 + ["node3"] * 3 + ["node4"] * 3   # grouped by target
