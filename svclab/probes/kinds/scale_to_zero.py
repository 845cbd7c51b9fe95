"""scale-to-zero: a Service whose pods are all gone. Scales the lab's Deployment to zero, waits
until the Service has no endpoint left, times how fast a connection to its nodePort and to its
external address is refused from outside, then scales back and waits for answers.

A refusal is an ICMP error, and Linux sends each peer only about one a second: the probe sends
from an outside client of its own (container svclab-client-refusals-CLUSTER), whose address no
other probe uses, so that other labs' refused traffic running beside it cannot delay its refusals."""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, model_validator

from ... import site
from ...errors import SvclabError
from ...kube import pause_of, poll, wait_until
from ...outside import OutsideClient, failure_reason
from ..base import NAME, Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import lab_address, outside_run, service, wait_external_ip

USES_OUTSIDE = True   # sends from the outside client

EXAMPLE = """
- id: no-pod-node-port-refused
  claim: C34
  path: "scale echo to 0; outside client → every node's nodePort, timed; scale back"
  kind: scale-to-zero
  service: echo
  deployment: echo
  via: node-port
  expect: {refused_within_ms: 500, answers_after: true}
"""


class Expect(Expectation):
    refused_within_ms: float | None = Field(None, gt=0, description=(
        "With no pod, every connection is refused (not left hanging), each target's median within this many ms "
        "(one retried SYN, a second, is seen now and then)."))
    unreachable: bool | None = Field(
        None, description="With no pod, every connection fails without a refusal: the address is not there at all.")
    answers_after: bool | None = Field(None, description="Scaled back, every target answers again.")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "refused_within_ms": lambda: f"refused within {value:g} ms",
            "unreachable": lambda: "the address is gone (no refusal)" if value else "the address stays",
            "answers_after": lambda: "answers again when scaled back" if value else "no answer after",
        }[key]()

    @property
    def settles(self) -> bool:
        return False

    def prediction(self) -> Prediction | None:
        if self.refused_within_ms is not None:
            return Prediction(("refused at once", "hangs until a timeout"), "refused at once")
        return None


class Spec(ProbeSpec[Expect]):
    """Scales DEPLOYMENT to zero, connects to SERVICE from outside, scales it back."""

    kind: Literal["scale-to-zero"]
    service: str = Field(pattern=NAME, description="A NodePort or LoadBalancer Service in the lab's namespace.")
    deployment: str = Field(pattern=NAME, description="The Deployment behind it.")
    via: Literal["node-port", "load-balancer"] = Field(description="A node's nodePort, or the external address.")
    pods: Literal["none", "not-ready"] = Field("none", description=(
        "none: scale the Deployment to zero (and back); not-ready: its pods run but are not ready, "
        "nothing is changed (the probe waits until the Service lists them, none ready)"))

    def changes_cluster(self) -> bool:
        return self.pods == "none"

    @model_validator(mode="after")
    def _nothing_comes_back_from_not_ready(self):
        for expect in self.expectations():
            if self.pods == "not-ready" and "answers_after" in expect.given():
                raise ValueError("expect.answers_after needs pods: none (the probe scales back only what it scaled)")
        return self
    tries: int = Field(3, ge=1, le=20, description="Connections per target while there is no pod (a second apart).")


def timed_script(ip: str, port: int) -> str:
    """One HTTP request; prints curl's total time and exit status, then its verbose log, which has
    the kernel's reason for a failed connection ("Connection refused"). IP and PORT validated."""
    return (f"curl -sS -v -o /dev/null -m 3 -w '%{{time_total}}' http://{ip}:{int(port)}/hostname 2>/tmp/svclab-err-$$;"
            f" s=$?; printf ' %s\\n' $s; while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done"
            f" < /tmp/svclab-err-$$; rm -f /tmp/svclab-err-$$")


SETTLE = 10   # seconds for every node's kube-proxy to drop a vanished pod
# Linux sends one peer at most about one ICMP error a second: a refusal right after another has its
# first SYN go unanswered and is refused only on the retry, a second later. Tries at one node are
# spaced so that each is refused as the first would be.
ICMP_GAP = 1.1

OWN_CLIENT = "client-refusals"   # the probe's own outside client: its role (see the module's docstring)

_TIMED = re.compile(r"^\s*([0-9.]+)\s+(\d+)\s*(.*)$", re.S)


def parse_timed(output: str) -> dict[str, Any]:
    """{'seconds', 'status', 'error'} of what timed_script printed."""
    match = _TIMED.match(output)
    if not match:
        return {"seconds": None, "status": None, "error": output.strip()[:200]}
    status = int(match.group(2))
    error = re.sub(r"^curl: \(\d+\) ", "", failure_reason(status, match.group(3))) if status else ""
    return {"seconds": float(match.group(1)), "status": status, "error": error[:200]}


def _targets(ctx, spec: Spec) -> list[tuple[str, str, int]]:
    svc = service(ctx, spec.service)
    port = (svc["spec"].get("ports") or [{}])[0]
    if spec.via == "node-port":
        if not port.get("nodePort"):
            raise SvclabError(f"Service {spec.service} has no nodePort")
        return [(f"{n.name} {n.ip}:{port['nodePort']}", n.ip, int(port["nodePort"])) for n in ctx.topology.nodes]
    ip = wait_external_ip(ctx, spec.service, ctx.settings.wait_timeout if ctx.env.provider.expects_address else 1)
    return [(f"external address {ip}:{port['port']}", ip, int(port["port"]))] if ip else []


def _endpoints(ctx, name: str) -> tuple[int, int]:
    """(endpoints, ready endpoints) of the Service NAME. A terminating pod stays an endpoint, not
    ready but still serving, and kube-proxy sends to it while there is no ready one."""
    slices = ctx.kube.list("discovery.k8s.io/v1", "EndpointSlice", ctx.namespace,
                           label_selector=f"kubernetes.io/service-name={name}")
    every = [e for s in slices for e in s.get("endpoints") or []]
    return len(every), sum(1 for e in every if (e.get("conditions") or {}).get("ready"))


@contextlib.contextmanager
def own_client(ctx) -> Iterator[OutsideClient]:
    """The probe's own outside client, started beside the outside client (on its docker network:
    svclab's, or on a cluster svclab did not make the nodes' own) if it is not running."""
    from ...network import docker_client

    dc, cluster = docker_client(), ctx.settings.cluster_name
    site.ensure(dc, cluster=cluster, network=ctx.env.pool.network, machine=site.confined(OWN_CLIENT, "pause"))
    client = OutsideClient(dc, site.container_name(OWN_CLIENT, cluster))
    try:
        yield client
    finally:
        client.close()


def _once(ctx, client, label: str, ip: str, port: int) -> dict[str, Any]:
    _, out = outside_run(ctx, timed_script(lab_address(ctx, ip), port), timeout=5, client=client)
    return {"target": label, **parse_timed(out)}


def _ask(ctx, client, targets, tries: int, *, settle: float = 0) -> list[dict[str, Any]]:
    """TRIES attempts per target from CLIENT, in rounds over the targets; the attempts come back grouped by
    target, in the targets' order. With SETTLE, first, for each target, up to SETTLE seconds of
    attempts until one is refused: each node's kube-proxy takes a moment to see the endpoints go
    (until then a connection goes to the vanished pod's address and times out). Also with SETTLE,
    a target is asked again only ICMP_GAP after its last attempt: the limit is each node's own
    (every node is a host of its own), so going round the nodes lets the others answer meanwhile."""
    pause = pause_of(None)
    last: dict[str, float] = {}
    seen: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in targets}
    if settle:
        for label, ip, port in targets:
            poll(lambda: _once(ctx, client, label, ip, port), _refused, timeout=settle, interval=0.1)
            last[label] = time.monotonic()
    for _ in range(tries):
        for label, ip, port in targets:
            if settle and (gap := last.get(label, 0.0) + ICMP_GAP - time.monotonic()) > 0:
                pause(gap)
            seen[label].append(_once(ctx, client, label, ip, port))
            last[label] = time.monotonic()
    return [attempt for label, _, _ in targets for attempt in seen[label]]


def observe(ctx, spec: Spec) -> Observation:
    with own_client(ctx) as client:
        return _observe(ctx, spec, client)


def _observe(ctx, spec: Spec, client: OutsideClient) -> Observation:
    deployment = ctx.kube.get("apps/v1", "Deployment", spec.deployment, ctx.namespace)
    if deployment is None:
        raise SvclabError(f"Deployment {spec.deployment} does not exist in {ctx.namespace}")
    replicas = int(deployment["spec"].get("replicas", 1))
    if replicas < 1:
        raise SvclabError(f"Deployment {spec.deployment} is already at zero replicas: nothing to take away")
    targets = _targets(ctx, spec)
    if not targets:
        return Observation("no external address", [f"Service {spec.service} has no external address"],
                           {"refused": [], "after": [], "address": None})
    scale = lambda n: ctx.kube.patch("apps/v1", "Deployment", spec.deployment,  # noqa: E731
                                     {"spec": {"replicas": n}}, ctx.namespace)
    total, ready = _endpoints(ctx, spec.service)
    evidence = [f"{spec.deployment}: {replicas} replicas; Service {spec.service}: {total} endpoints, {ready} ready"]
    if spec.pods == "not-ready":
        (total, ready), _ = poll(lambda: _endpoints(ctx, spec.service), lambda seen: seen[0] > 0 and seen[1] == 0,
                                 timeout=ctx.settings.wait_timeout)
        if not total or ready:
            raise SvclabError(f"Service {spec.service} did not come to list pods none of which is ready "
                              f"({total} endpoints, {ready} ready)")
        evidence.append(f"Service {spec.service}: {total} endpoints (pods running), none ready")
        refused = _ask(ctx, client, targets, spec.tries, settle=SETTLE)
        _add_refusals(evidence, refused)
        return Observation(_summary(refused, []), evidence, {"refused": refused, "after": []})
    scale(0)
    try:
        wait_until(f"Service {spec.service} to lose its endpoints", lambda: _endpoints(ctx, spec.service)[0] == 0,
                   timeout=ctx.settings.wait_timeout)
        evidence.append(f"scaled {spec.deployment} to 0: no endpoint left (not even a terminating pod)")
        refused = _ask(ctx, client, targets, spec.tries, settle=SETTLE)
    finally:
        scale(replicas)
    ctx.kube.wait_deployment(ctx.namespace, spec.deployment, timeout=ctx.settings.wait_timeout)
    # kube-proxy reprograms each node within moments of the endpoints coming back.
    after, _ = poll(lambda: _ask(ctx, client, targets, 1), lambda seen: all(s["status"] == 0 for s in seen),
                    timeout=ctx.settings.wait_timeout / 4, interval=0.25)
    _add_refusals(evidence, refused)
    if spec.via == "load-balancer" and (reported := ctx.env.provider.holder(ctx.kube, ctx.namespace, spec.service)):
        evidence.append(f"{ctx.env.provider.name} reports the address held by node {reported}")
    evidence.append(f"scaled back to {replicas}: " + ", ".join(
        f"{s['target']} {'answers' if s['status'] == 0 else s['error']}" for s in after))
    return Observation(_summary(refused, after), evidence, {"refused": refused, "after": after})


def _add_refusals(evidence: list[str], refused: list[dict[str, Any]]) -> None:
    for s in refused:
        evidence.append(f"no ready pod: {s['target']} → " + (
            f"{s['error'] or 'answered'} ({s['seconds'] * 1000:.0f} ms)" if s["seconds"] is not None else s["error"]))


def _summary(refused: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    slowest = max(((s["seconds"] or 0) for s in refused), default=0) * 1000
    text = f"refused {sum(_refused(s) for s in refused)}/{len(refused)}, slowest {slowest:.0f} ms"
    return text + (f"; {sum(s['status'] == 0 for s in after)}/{len(after)} answer after" if after else "")


def _refused(s: dict[str, Any]) -> bool:
    return s.get("status") == 7 and "refused" in (s.get("error") or "").lower()


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    refused, after = facts.get("refused") or [], facts.get("after") or []
    if not refused and facts.get("address", "") is None:
        return [] if expect.refused_within_ms is None and expect.unreachable is None and not expect.answers_after \
            else ["no external address"]
    if expect.unreachable is not None:
        gone = [s for s in refused if s.get("status") not in (0, None) and not _refused(s)]
        if expect.unreachable and (len(gone) < len(refused) or not refused):
            problems.append(f"{len(refused) - len(gone)} of {len(refused)} connections were answered or refused")
        if not expect.unreachable and gone:
            problems.append(f"{len(gone)} of {len(refused)} connections found no address")
    if expect.refused_within_ms is not None:
        if not refused:
            problems.append("nothing was tried")
        for s in refused:
            if not _refused(s):
                problems.append(f"{s['target']}: {s.get('error') or 'answered'} (not refused)")
        for target in dict.fromkeys(s["target"] for s in refused):
            times = [(s.get("seconds") or 0) * 1000 for s in refused if s["target"] == target and _refused(s)]
            if times and statistics.median(times) > expect.refused_within_ms:
                problems.append(f"{target}: refused after a median {statistics.median(times):.0f} ms")
    if expect.answers_after is not None:
        answering = sum(1 for s in after if s.get("status") == 0)
        if expect.answers_after and (not after or answering < len(after)):
            problems.append(f"{len(after) - answering} of {len(after)} targets did not answer after scaling back")
        if not expect.answers_after and answering:
            problems.append(f"{answering} of {len(after)} targets answered after scaling back")
    return problems
