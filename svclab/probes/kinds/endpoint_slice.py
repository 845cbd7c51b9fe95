"""endpoint-slice: a Service without a selector, sent where a hand-written EndpointSlice points. svclab
runs an echo server beside the cluster (a container on its docker network, outside every node),
writes an EndpointSlice for the Service with that server's address, and requests the Service's
ClusterIP from the in-cluster client."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ... import site
from ...errors import SvclabError
from ..base import NAME, Expectation, Observation, Prediction, ProbeSpec, Topology, answer_count_problems
from ..traffic import dial, lab_address, service

OWN_CLUSTER = "runs an echo server container beside svclab's own nodes"   # why it runs only on a kind cluster svclab made

EXAMPLE = """
- id: slice-points-outside
  claim: C33
  path: "client pod → outside ClusterIP → a server beside the cluster"
  kind: endpoint-slice
  service: outside
  expect: {answers: true, served_outside: true}
"""

SERVER_PORT = 8080
SERVER_NAME = "svclab-outside-server"   # the server's host name: what it answers to /hostname


class Expect(Expectation):
    answers: bool | None = Field(None, description="Every request through the ClusterIP is answered.")
    served_outside: bool | None = Field(
        None, description="Every answer came from the server beside the cluster (false: none did).")

    def phrase(self, key: str, value: Any) -> str:
        if key == "answers":
            return "answers" if value else "no answer"
        return "served by the server outside the cluster" if value else "not served outside"

    def prediction(self) -> Prediction | None:
        if self.served_outside is not None:
            choices = ("the server outside the cluster", "a pod", "nobody")
            return Prediction(choices, choices[0] if self.served_outside else choices[1 if self.answers else 2])
        return None


class Spec(ProbeSpec[Expect]):
    """Points SERVICE (one without a selector) at the server beside the cluster with an
    EndpointSlice, then sends TRIES requests to its ClusterIP from the in-cluster client."""

    kind: Literal["endpoint-slice"]
    service: str = Field(pattern=NAME, description="A Service of the lab without a selector.")
    tries: int = Field(4, ge=1, le=20, description="Requests, each on a new connection.")


def endpoint_slice(service_name: str, port_name: str | None, address: str) -> dict[str, Any]:
    """The EndpointSlice that makes ADDRESS:SERVER_PORT the one endpoint of SERVICE_NAME (whose
    port is named PORT_NAME, or unnamed): the kubernetes.io/service-name label links them, and
    the managed-by label keeps the cluster's EndpointSlice controller away from it."""
    port = {"port": SERVER_PORT, "protocol": "TCP"} | ({"name": port_name} if port_name else {})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-by-hand",
                         "labels": {"kubernetes.io/service-name": service_name,
                                    "endpointslice.kubernetes.io/managed-by": "svclab.io"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [port]}


def observe(ctx, spec: Spec) -> Observation:
    from ...network import docker_client

    svc = service(ctx, spec.service)
    if svc["spec"].get("selector"):
        raise SvclabError(f"Service {ctx.namespace}/{spec.service} has a selector",
                          hint="its endpoints would be the selected pods: remove the selector")
    server = site.confined("outside-server", f"netexec --http-port={SERVER_PORT}", hostname=SERVER_NAME)
    address = lab_address(ctx, site.ensure(docker_client(), cluster=ctx.settings.cluster_name,
                                           network=ctx.settings.network, machine=server))
    port = (svc["spec"].get("ports") or [{}])[0]
    ctx.kube.apply([endpoint_slice(spec.service, port.get("name"), address)], namespace=ctx.namespace)
    got = dial(ctx, "pod", svc["spec"]["clusterIP"], port["port"], "hostname", spec.tries)
    answers, errors = got.get("responses", []), got.get("errors", [])
    served = [a for a in answers if a == SERVER_NAME]
    evidence = [
        f"Service {ctx.namespace}/{spec.service} has no selector; svclab wrote the EndpointSlice "
        f"{spec.service}-by-hand: {address}:{SERVER_PORT}, the container {site.container_name('outside-server', ctx.settings.cluster_name)}",
        f"pod → ClusterIP {svc['spec']['clusterIP']}:{port['port']}: {len(answers)}/{spec.tries} answered"
        + (f"; saw {', '.join(sorted(set(answers)))}" if answers else "")
        + (f"; error: {errors[0][:120]}" if errors else ""),
    ]
    facts = {"tries": spec.tries, "answered": len(answers), "served_outside": len(served), "address": address,
             "answers": sorted(set(answers))}
    return Observation(f"{len(answers)}/{spec.tries} answered, {len(served)} by the server outside the cluster",
                       evidence, facts)


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems, tries = [], facts.get("tries", 0)
    for key, want in expect.given().items():
        if key == "answers":
            problems += answer_count_problems(want, facts.get("answered", 0), tries, "requests")
        elif key == "served_outside":
            served, answered = facts.get("served_outside", 0), facts.get("answered", 0)
            if want and (not answered or served < answered):
                problems.append(f"{answered - served} of {answered} answers came from elsewhere" if answered
                                else "no answer at all")
            if not want and served:
                problems.append(f"{served} answers came from the server outside the cluster")
    return problems
