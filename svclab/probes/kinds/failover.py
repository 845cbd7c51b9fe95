"""failover: fail the node that holds a Service's external address the way a machine dies, time
how long until the address answers again through another node, then bring the node back."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from ...errors import SvclabError
from ..base import NAME, Expectation, Observation, ProbeSpec, Topology
from ..outage import cut_off
from ..traffic import arp_holder, outside_get, service, wait_external_ip

OWN_CLUSTER = "stops a node container of svclab's own cluster"   # why it runs only on a kind cluster svclab made

EXAMPLE = """
- id: holder-fails
  claim: C21
  path: "freeze the holding node; EXTERNAL-IP:80 until it answers again"
  kind: failover
  service: echo-failover
  within: 120
  expect: {recovers_within: 90}
  expect_by_provider:
    none: {has_address: false}
"""


class Expect(Expectation):
    recovers_within: float | None = Field(
        None, gt=0, description="Seconds within which the address answers again, from another node.")
    has_address: bool | None = Field(
        None, description="false: the Service gets no external address, so there is nothing to fail over.")

    def phrase(self, key: str, value: Any) -> str:
        if key == "recovers_within":
            return f"answers again within {value:g}s, from another node"
        return "an external address to fail over" if value else "no external address"

    @property
    def settles(self) -> bool:
        return False


class Spec(ProbeSpec[Expect]):
    """Cuts the holding node off its network (IP and ARP) and freezes it (docker pause), asks the
    address from the outside client until it answers or WITHIN seconds pass, then restores it."""

    CHANGES_CLUSTER: ClassVar[bool] = True

    kind: Literal["failover"]
    service: str = Field(pattern=NAME,
                         description="A LoadBalancer Service in the lab's namespace.")
    within: float = Field(120, gt=0, le=600, description="Seconds to keep asking after the node fails.")


def observe(ctx, spec: Spec) -> Observation:
    name, within = spec.service, float(spec.within)
    timeout = ctx.settings.wait_timeout if ctx.env.provider.expects_address else 3
    ip = wait_external_ip(ctx, name, timeout)
    if not ip:
        return Observation("no external address", [f"Service {name} has no external address"], {"address": None})
    provider, kube = ctx.env.provider, ctx.kube
    port = int(service(ctx, name)["spec"]["ports"][0]["port"])
    outside_get(ctx, ip, port, "hostname", 3)
    holder = arp_holder(ctx, ip)
    if not holder:
        raise SvclabError(f"could not tell which node answers for {ip}")
    evidence = [f"{ip} answered via node {holder} (the client's ARP entry)"]
    if reported := provider.holder(kube, ctx.namespace, name):
        evidence.append(f"{provider.name} reports the address held by node {reported}")
    took = after = None
    attempts: list[dict[str, Any]] = []   # each: seconds after the cut, answered, the pod and its node
    with cut_off(ctx, holder, frozen=True) as tries:
        evidence.append(f"cut {holder} off the network and froze it"
                        + (f" (on try {tries}: the kernel's freezer gave up on the busy node before)" if tries > 1 else ""))
        started = time.monotonic()
        while time.monotonic() - started < within:
            pod = outside_get(ctx, ip, port, "hostname", 1)
            attempts.append({"at": round(time.monotonic() - started, 2), "answered": bool(pod), "pod": pod,
                             "node": ctx.topology.pod_nodes.get(pod) if pod else None})
            if pod:
                took = time.monotonic() - started
                break
        if took is not None:
            after = arp_holder(ctx, ip)
    evidence.append(f"restored {holder}")
    if took is None:
        evidence.append(f"{ip} did not answer within {within:.0f}s ({len(attempts)} attempts)")
        return Observation("no answer after failover", evidence,
                           {"address": ip, "holder_before": holder, "attempts": attempts})
    evidence.append(f"{ip} answered again after {took:.1f}s ({len(attempts)} attempts), now held by {after or '?'}")
    return Observation(f"failover in {took:.1f}s: {holder} → {after or '?'}", evidence,
                       {"address": ip, "failover_seconds": round(took, 2), "holder_before": holder,
                        "holder_after": after, "attempts": attempts})



def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    if expect.has_address is not None and bool(facts.get("address", facts.get("holder_before"))) != expect.has_address:
        problems.append("the Service got an external address" if not expect.has_address else "no external address")
    if expect.recovers_within is not None:
        took = facts.get("failover_seconds")
        if took is None:
            problems.append("the address did not answer again")
        elif took > expect.recovers_within:
            problems.append(f"took {took:.1f}s")
        if facts.get("holder_after") and facts.get("holder_after") == facts.get("holder_before"):
            problems.append("the same node still holds the address")
    return problems
