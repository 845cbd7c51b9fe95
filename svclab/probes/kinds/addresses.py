"""addresses: the lab's LoadBalancer Services (and Ingresses) with the addresses they hold."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ...config import price_range
from ..base import Expectation, Observation, ProbeSpec, Topology
from ..traffic import external_ip, service

EXAMPLE = """
- id: one-address-per-loadbalancer
  claim: C20
  path: "LoadBalancer Services in the lab and the addresses they hold"
  kind: addresses
  include: [svclab-traefik/traefik]
  expect: {one_address_each: true}
"""


class Expect(Expectation):
    one_address_each: bool | None = Field(
        None, description="true: every LoadBalancer Service holds its own address; false: none holds one.")

    def phrase(self, key: str, value: Any) -> str:
        return "one external address per LoadBalancer Service" if value else "no external addresses"


class Spec(ProbeSpec[Expect]):
    """Lists every LoadBalancer Service in the lab's namespace, plus INCLUDE, and every Ingress."""

    kind: Literal["addresses"]
    include: list[str] = Field(default_factory=list,
                               description="More Services to count, as NAMESPACE/NAME (a cluster component's).")


def observe(ctx, spec: Spec) -> Observation:
    services = {svc["metadata"]["name"]: svc for svc in ctx.kube.list("v1", "Service", ctx.namespace)
                if svc["spec"].get("type") == "LoadBalancer"}
    services.update({ref: service(ctx, ref) for ref in spec.include})
    evidence, addresses, by_service, ingress_addresses, ingress_hosts = [], [], {}, [], 0
    for name, svc in sorted(services.items()):
        ip = external_ip(svc)
        by_service[name] = ip
        if ip:
            addresses.append(ip)
        evidence.append(f"Service {name}: {ip or '<pending>'}")
    for ing in ctx.kube.list("networking.k8s.io/v1", "Ingress", ctx.namespace):
        hosts = [r.get("host", "*") for r in ing["spec"].get("rules", [])]
        ingress_hosts += len(hosts)
        ingress_addresses.append(external_ip(ing))
        evidence.append(f"Ingress {ing['metadata']['name']} ({', '.join(hosts)}): {external_ip(ing) or '<pending>'}"
                        " — every host behind one address")
    if services:
        evidence.append(monthly_cost(len(services), ingress_hosts, price_range(ctx.settings.lb_price)))
    return Observation(f"{len(services)} LoadBalancer Services, {len(set(addresses))} distinct addresses", evidence,
                       {"lb_services": len(services), "addresses": addresses, "by_service": by_service,
                        "ingress_addresses": ingress_addresses, "ingress_hosts": ingress_hosts})


def monthly_cost(services: int, hosts: int, price: tuple[float, float]) -> str:
    """The cost argument in dollars: each LoadBalancer Service is a cloud load balancer billed on
    its own, while every host behind an Ingress shares the Ingress controller's one."""
    def dollars(count: int) -> str:
        low, high = price[0] * count, price[1] * count
        return f"${low:,.0f}" if low == high else f"${low:,.0f}–{high:,.0f}"

    these = "this LoadBalancer Service costs" if services == 1 else f"these {services} LoadBalancer Services cost"
    line = f"at {dollars(1)} a month per cloud load balancer, {these} {dollars(services)} a month"
    if hosts:
        line += (f"; the {hosts} host names behind the Ingress share one ({dollars(1)}), where a Service "
                 f"each would cost {dollars(hosts)}")
    return line


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    services, distinct = facts.get("lb_services", 0), len(set(facts.get("addresses", [])))
    if expect.one_address_each and (services == 0 or distinct != services):
        return [f"{services} LoadBalancer Services hold {distinct} distinct addresses"]
    if expect.one_address_each is False and distinct:
        return [f"{distinct} addresses were assigned"]
    return []
