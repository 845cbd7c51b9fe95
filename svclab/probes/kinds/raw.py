"""raw: plain TCP or UDP, not HTTP, from the outside client with netcat: a TCP connection the
backend answers with its name and closes, or a UDP datagram it answers with one. Sent to a
Service's external address or to every node's nodePort, or to a port a Service does not declare
(the Ingress controller's address on the lab's port, to show that it carries HTTP only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ...errors import SvclabError
from ..base import Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import lab_address, outside_run, service, wait_external_ip

USES_OUTSIDE = True   # sends from the outside client

EXAMPLE = """
- id: udp-at-external-address
  claim: C28
  path: "outside client → EXTERNAL-IP:9000/udp"
  kind: raw
  protocol: udp
  service: proto-udp
  via: load-balancer
  expect: {answers: true}
  expect_by_provider:
    none: {answers: false}
"""

WAIT = 2   # seconds netcat waits for an answer
NO_NC = "svclab: no nc"


class Expect(Expectation):
    answers: bool | None = Field(None, description="true: every target answers every try; false: none answers at all.")

    def phrase(self, key: str, value: Any) -> str:
        return "answers" if value else "no answer"

    @property
    def settles(self) -> bool:
        return self.answers is not False

    def prediction(self) -> Prediction | None:
        return Prediction(("answers", "no answer"), "answers" if self.answers else "no answer")


class Spec(ProbeSpec[Expect]):
    """Sends TRIES TCP connections or UDP datagrams to SERVICE's PORT (default: its first port of
    that protocol) reached VIA its external address or every node's nodePort."""

    kind: Literal["raw"]
    protocol: Literal["tcp", "udp"] = Field(description="The transport: a TCP connection or a UDP datagram.")
    service: str = Field(description="The Service: NAME in the lab's namespace, or NAMESPACE/NAME.")
    via: Literal["node-port", "load-balancer"] = Field(description="Every node's nodePort, or the external address.")
    port: int | None = Field(None, ge=1, le=65535, description=(
        "with via load-balancer: a port to try at the external address, declared by the Service or not "
        "(default: the Service's first port of that protocol)"))
    tries: int = Field(2, ge=1, le=20, description="Connections or datagrams per target.")

    def rules_service(self) -> str | None:
        return self.service

    @model_validator(mode="after")
    def _port_only_at_the_external_address(self):
        if self.port is not None and self.via == "node-port":
            raise ValueError("port chooses a port at the external address: use it only with via: load-balancer")
        return self


def raw_script(protocol: str, host: str, port: int, tries: int) -> str:
    """TRIES attempts with netcat, each answer printed followed by 0x1f (HOST and PORT validated)."""
    send = (f"nc -w {WAIT} {host} {int(port)} </dev/null" if protocol == "tcp"
            else f"printf 'hostname' | nc -u -W 1 -w {WAIT} {host} {int(port)}")   # -W 1: done at the answer
    # The client's shell is a long-lived session (outside.py): the script must not exit it.
    return (f"if ! command -v nc >/dev/null; then printf '{NO_NC}\\n'; else "
            f"i=0; while [ $i -lt {int(tries)} ]; do i=$((i+1)); "
            f"answer=$({send} 2>/dev/null); printf '%s\\037\\n' \"$answer\"; done; fi")


def parse_raw(output: str) -> list[str]:
    """The answers raw_script printed, one per attempt ('' when none came)."""
    return [part.strip() for part in output.split("\x1f")[:-1]]


def targets(ctx, spec: Spec) -> tuple[list[tuple[str, str, int]], list[str]]:
    svc = service(ctx, spec.service)
    ports = [p for p in svc["spec"].get("ports") or [] if p.get("protocol", "TCP").lower() == spec.protocol]
    if spec.via == "node-port":
        if not ports or not ports[0].get("nodePort"):
            raise SvclabError(f"Service {spec.service} has no {spec.protocol.upper()} nodePort")
        node_port = int(ports[0]["nodePort"])
        return [(f"{n.name} {n.ip}:{node_port}/{spec.protocol}", n.ip, node_port) for n in ctx.topology.nodes], []
    port = spec.port or (int(ports[0]["port"]) if ports else None)
    if port is None:
        raise SvclabError(f"Service {spec.service} declares no {spec.protocol.upper()} port: give the probe a port")
    declared = any(int(p["port"]) == port for p in ports)
    notes = [] if declared else [f"Service {spec.service} declares no {port}/{spec.protocol}"]
    timeout = ctx.settings.wait_timeout if ctx.env.provider.expects_address else 3
    ip = wait_external_ip(ctx, spec.service, timeout)
    if not ip:
        return [], notes + [f"Service {spec.service} has no external address"]
    return [(f"{ip}:{port}/{spec.protocol}", ip, port)], notes


def observe(ctx, spec: Spec) -> Observation:
    found, evidence = targets(ctx, spec)
    samples = []
    for label, host, port in found:
        script = raw_script(spec.protocol, lab_address(ctx, host), port, spec.tries)
        _, output = outside_run(ctx, script, timeout=spec.tries * (WAIT + 2))
        if NO_NC in output:
            raise SvclabError("the outside client has no nc (netcat), which raw probes need",
                              hint="its image is older than svclab's: `svclab cluster.down` and `cluster.up` make a new one")
        answers = parse_raw(output)
        samples.append({"label": label, "answers": answers})
        got = [a for a in answers if a]
        evidence.append(f"outside → {label}: {len(got)}/{spec.tries} answered"
                        + (f" by {', '.join(sorted(set(got)))}" if got else ""))
    answered = sum(1 for s in samples if s["answers"] and all(s["answers"]))
    silent = sum(1 for s in samples if not any(s["answers"]))
    return Observation(f"{answered}/{len(samples)} targets answered over {spec.protocol.upper()}", evidence,
                       {"protocol": spec.protocol, "targets": len(samples), "answered_targets": answered,
                        "silent_targets": silent})


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    targets_, answered, silent = facts.get("targets", 0), facts.get("answered_targets", 0), facts.get("silent_targets", 0)
    if expect.answers and (not targets_ or answered < targets_):
        return [f"{targets_ - answered} of {targets_} targets did not answer every try" if targets_ else "no target"]
    if expect.answers is False and silent < targets_:
        return [f"{targets_ - silent} of {targets_} targets answered"]
    return []
