"""pending: watch a LoadBalancer Service for a while, expecting it to get no external address."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from ...kube import poll
from ..base import NAME, Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import external_ip, field, service

EXAMPLE = """
- id: stays-pending
  claim: C12
  path: EXTERNAL-IP of a LoadBalancer Service no controller implements
  kind: pending
  service: echo
  within: 15
  expect: {pending: true}
"""


class Expect(Expectation):
    pending: bool | None = Field(None, description="true: no address arrives while watching; false: one does.")

    def phrase(self, key: str, value: Any) -> str:
        return "stays <pending>" if value else "gets an address"

    @property
    def settles(self) -> bool:
        return False

    def prediction(self) -> Prediction | None:
        return Prediction(("an address", "<pending>"), "<pending>" if self.pending else "an address")


class Spec(ProbeSpec[Expect]):
    """Watches SERVICE for WITHIN seconds (or until it gets an address)."""

    kind: Literal["pending"]
    service: str = Field(pattern=NAME, description="A Service in the lab's namespace.")
    within: float = Field(10, gt=0, le=300, description="Seconds to watch.")


def observe(ctx, spec: Spec) -> Observation:
    name, within = spec.service, float(spec.within)
    started = time.monotonic()
    svc, _ = poll(lambda: service(ctx, name), external_ip, timeout=within, interval=0.5)
    ip = external_ip(svc)
    waited = time.monotonic() - started
    lb_class = field(svc, "spec.loadBalancerClass")
    evidence = [f"Service {ctx.namespace}/{name} type={field(svc, 'spec.type')}"
                + (f" loadBalancerClass={lb_class}" if lb_class else "")]
    if ip:
        evidence.append(f"EXTERNAL-IP {ip} after {waited:.1f}s")
        return Observation(f"got {ip}", evidence, {"pending": False, "value": ip})
    evidence.append(f"EXTERNAL-IP <pending> for {waited:.0f}s of watching")
    return Observation("<pending>", evidence, {"pending": True, "watched_seconds": round(waited, 1)})


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    if bool(facts.get("pending")) != expect.pending:
        return ["an address was assigned" if expect.pending else "no address was assigned"]
    return []
