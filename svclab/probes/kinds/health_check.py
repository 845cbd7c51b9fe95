"""health-check: what a cloud load balancer's health check sees on every node's
healthCheckNodePort (kube-proxy answers it for Services with externalTrafficPolicy Local)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from ...errors import SvclabError
from ..base import Expectation, Observation, ProbeSpec, Topology
from ..traffic import outside_status, service

USES_OUTSIDE = True   # sends from the outside client
FROM_THIS_MACHINE = None   # plain HTTP: this machine can send it too (svclab.this_machine)
TO_NODES = True            # to every node's address

EXAMPLE = """
- id: health-check-per-node
  claim: C18
  path: "every node's healthCheckNodePort (policy Local)"
  kind: health-check
  service: echo-local
  expect: {healthy_where_backends: true}
"""


class Expect(Expectation):
    healthy_where_backends: bool | None = Field(
        None, description="200 on exactly the nodes that run a backend pod, 503 on the others.")

    def phrase(self, key: str, value: Any) -> str:
        return "200 on nodes with a backend, 503 elsewhere"


class Spec(ProbeSpec[Expect]):
    """Asks every node's kube-proxy, from the outside client, for SERVICE's health-check answer."""

    kind: Literal["health-check"]
    service: str = Field(description="A Service with externalTrafficPolicy Local: NAME or NAMESPACE/NAME.")

    def rules_service(self) -> str | None:
        return self.service


def observe(ctx, spec: Spec) -> Observation:
    port = service(ctx, spec.service)["spec"].get("healthCheckNodePort")
    if not port:
        raise SvclabError(f"Service {spec.service} has no healthCheckNodePort (is its policy Local?)")
    port = int(port)
    codes, evidence = {}, []
    for node in ctx.topology.nodes:
        codes[node.name], body = outside_status(ctx, node.ip, port, timeout=ctx.settings.probe_timeout)
        try:
            local = json.loads(body).get("localEndpoints")
        except ValueError:
            local = None
        evidence.append(f"{node.name} {node.ip}:{port} → HTTP {codes[node.name] or 'no answer'}"
                        + (f", localEndpoints={local}" if local is not None else ""))
    return Observation(summary(codes), evidence, {"codes": codes, "backend_nodes": ctx.topology.backend_nodes})


def summary(codes: dict[str, int]) -> str:
    """'200 on a, b; 503 on c': each answer with the nodes that gave it."""
    by_code: dict[str, list[str]] = {}
    for node, code in sorted(codes.items()):
        by_code.setdefault(str(code) if code else "no answer", []).append(node)
    return "; ".join(f"{code} on {', '.join(nodes)}" for code, nodes in sorted(by_code.items())) or "no node"


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    codes = facts.get("codes") or {}
    backend_nodes = facts.get("backend_nodes", topology.backend_nodes if topology else [])
    if not codes:
        return ["no node answered the health check"]
    want = expect.healthy_where_backends
    return [f"{node} answered {code}" for node, code in sorted(codes.items())
            if ((code == 200) == (node in backend_nodes)) != want]
