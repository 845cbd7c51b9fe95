"""policy-flip: switch a live Service's externalTrafficPolicy, compare the source address the
backend sees before and after, and switch it back."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ...kube import poll
from ..base import NAME, Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import dial, service

EXAMPLE = """
- id: flip-the-live-policy
  claim: C17
  path: "switch echo-cluster to Local and back: the source the backend sees, before and after"
  kind: policy-flip
  service: echo-cluster
  expect: {flips_source: true}
"""


class Expect(Expectation):
    flips_source: bool | None = Field(None, description="The source the backend sees changes with the policy.")

    def phrase(self, key: str, value: Any) -> str:
        return "the source the backend sees changes with the policy" if value else "the source stays the same"

    @property
    def settles(self) -> bool:
        return False

    def prediction(self) -> Prediction | None:
        return Prediction(("it changes", "it stays"), "it changes" if self.flips_source else "it stays")


class Spec(ProbeSpec[Expect]):
    """Requests SERVICE's nodePort on a backend's node from outside, under each policy."""

    CHANGES_CLUSTER: ClassVar[bool] = True

    kind: Literal["policy-flip"]
    service: str = Field(pattern=NAME,
                         description="A NodePort or LoadBalancer Service in the lab's namespace.")

    def rules_service(self) -> str | None:
        return self.service


def observe(ctx, spec: Spec) -> Observation:
    name = spec.service
    node_port = int(service(ctx, name)["spec"]["ports"][0]["nodePort"])
    node = next(n for n in ctx.topology.nodes if n.name in set(ctx.topology.pod_nodes.values()))

    def source_kind() -> tuple[str | None, str, str | None]:
        label = f"{node.name} {node.ip}:{node_port}"
        got = dial(ctx, "outside", node.ip, node_port, "clientip", 1).get("responses", [])
        if not got:
            return None, f"{label}: no answer", None
        ip = got[0].rsplit(":", 1)[0]
        kind = ctx.topology.source_kind(ip, ctx.topology.client_ip)
        return kind, f"{label}: backend saw {ip} ({kind})", ip

    policy = service(ctx, name)["spec"]["externalTrafficPolicy"]
    flipped = "Local" if policy == "Cluster" else "Cluster"
    before, seen_before, before_ip = source_kind()
    evidence = [f"externalTrafficPolicy={policy}: {seen_before}"]
    patch = lambda value: ctx.kube.patch(  # noqa: E731
        "v1", "Service", name, {"spec": {"externalTrafficPolicy": value}}, ctx.namespace)
    patch(flipped)
    after = after_ip = None
    try:
        # kube-proxy reprograms the node within moments: look again until the source changes.
        (after, seen_after, after_ip), _ = poll(source_kind, lambda seen: bool(seen[0] and seen[0] != before),
                                                timeout=ctx.settings.wait_timeout / 8)
        evidence.append(f"externalTrafficPolicy={flipped}: {seen_after}")
    finally:
        patch(policy)
        evidence.append(f"externalTrafficPolicy set back to {policy}")
    return Observation(f"{policy}: {before or 'no answer'} → {flipped}: {after or 'no answer'}", evidence,
                       {"before_policy": policy, "before_source": before, "before_ip": before_ip,
                        "after_policy": flipped, "after_source": after, "after_ip": after_ip})


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    before, after = facts.get("before_source"), facts.get("after_source")
    if not before or not after:
        return ["no source address observed"]
    if (before != after) != expect.flips_source:
        return [f"source stayed {before}" if expect.flips_source else f"source changed to {after}"]
    return []
