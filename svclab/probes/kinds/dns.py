"""dns: resolve a Service's cluster DNS name inside the in-cluster client pod."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from ..base import NAME, Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import service

EXAMPLE = """
- id: dns-resolves
  claim: C3
  path: pod resolves echo.<namespace>.svc.cluster.local
  kind: dns
  service: echo
  expect: {resolves_to_cluster_ip: true}
"""


class Expect(Expectation):
    resolves_to_cluster_ip: bool | None = Field(None, description="The name resolves to the Service's ClusterIP.")

    def phrase(self, key: str, value: Any) -> str:
        return "resolves to the ClusterIP" if value else "does not resolve to the ClusterIP"

    def prediction(self) -> Prediction | None:
        right = "the ClusterIP" if self.resolves_to_cluster_ip else "something else"
        return Prediction(("the ClusterIP", "something else"), right)


class Spec(ProbeSpec[Expect]):
    """Looks up <service>.<namespace>.svc.cluster.local from the in-cluster client pod."""

    kind: Literal["dns"]
    service: str = Field(pattern=NAME, description="A Service in the lab's namespace.")


def observe(ctx, spec: Spec) -> Observation:
    svc = service(ctx, spec.service)
    name = f"{spec.service}.{ctx.namespace}.svc.cluster.local"
    text = ctx.kube.get_json(f"/api/v1/namespaces/svclab-system/pods/{ctx.client_pod}:8080/proxy/shell",
                             [("cmd", f"getent hosts {name}")], timeout=ctx.settings.probe_timeout + 10)
    output = json.loads(text).get("output", "")
    resolved = output.split()[0] if output.split() else None
    cluster_ip = svc["spec"].get("clusterIP")
    return Observation(
        observed=f"{name} → {resolved or 'nothing'}",
        evidence=[f"pod {ctx.client_pod}: getent hosts {name} → {output.strip() or '(no answer)'}",
                  f"Service ClusterIP: {cluster_ip}"],
        facts={"value": resolved, "cluster_ip": cluster_ip},
    )


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    value, cluster_ip = facts.get("value"), facts.get("cluster_ip")
    if expect.resolves_to_cluster_ip is not None and (value is not None and value == cluster_ip) != expect.resolves_to_cluster_ip:
        return [f"resolved to {value!r}, ClusterIP is {cluster_ip!r}"]
    return []
