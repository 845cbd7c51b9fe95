"""unannounced: a LoadBalancer address that no node announces. svclab plays a load-balancer
implementation that only writes the address: it puts a free address of its pool into the status of
a Service of its own class (svclab.io/unannounced, which MetalLB and kube-vip leave alone) and
announces it nowhere. Then the in-cluster client and the outside client request it, the outside
client's ARP entry for it is read, and every node's kube-proxy rules are searched for it."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import Field

from ...cluster import node_containers
from ...errors import SvclabError
from ...kube import poll
from ...rules import node_rules, proxy_mode
from ..base import NAME, Expectation, Observation, Prediction, ProbeSpec, Topology, answer_count_problems
from ..traffic import dial, external_ip, outside_dial, outside_run, service

OWN_CLUSTER = "writes an address of svclab's own pool into a Service's status"   # why it runs only on a kind cluster svclab made
USES_OUTSIDE = True   # sends from the outside client

EXAMPLE = """
- id: pod-reaches-unannounced
  claim: C37
  path: "client pod and outside client → an external address no node announces"
  kind: unannounced
  service: echo-unannounced
  expect: {pod_answers: true, outside_answers: false, captured_on_every_node: true}
"""

CLASS = "svclab.io/unannounced"
RULES_DEADLINE = 10   # seconds for every node's kube-proxy to program the written address


class Expect(Expectation):
    pod_answers: bool | None = Field(None, description="Every request from the in-cluster client is answered.")
    outside_answers: bool | None = Field(
        None, description="Every request from the outside client is answered (false: none is).")
    captured_on_every_node: bool | None = Field(
        None, description="Every node's kube-proxy rules match the address (false: no node's do).")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "pod_answers": lambda: "a pod is answered" if value else "a pod gets no answer",
            "outside_answers": lambda: "the outside client is answered" if value else "the outside client gets no answer",
            "captured_on_every_node": lambda: "every node's rules hold the address" if value else "no node's rules hold it",
        }[key]()

    def prediction(self) -> Prediction | None:
        if self.pod_answers is None or self.outside_answers is None:
            return None
        choices = ("both", "only the pod", "only the outside client", "neither")
        return Prediction(choices, choices[2 * (not self.pod_answers) + (not self.outside_answers)])


class Spec(ProbeSpec[Expect]):
    """Writes an address of svclab's pool into SERVICE's status (a LoadBalancer Service of class
    svclab.io/unannounced), then sends TRIES requests to it from each client."""

    CHANGES_CLUSTER = True   # it writes the Service's status: after the lab's other probes

    kind: Literal["unannounced"]
    service: str = Field(pattern=NAME, description=f"A LoadBalancer Service of the lab with loadBalancerClass {CLASS}.")
    tries: int = Field(4, ge=1, le=20, description="Requests from each client, each on a new connection.")

    def rules_service(self) -> str | None:
        return self.service


def free_address(pool_addresses: list[str], held: set[str]) -> str | None:
    """The highest address of the pool no Service holds. The implementations hand out the lowest
    free ones first, so the top of the pool is the last they would reach for."""
    return next((ip for ip in reversed(pool_addresses) if ip not in held), None)


def held_addresses(services: list[dict[str, Any]], but: str) -> dict[str, str]:
    """address → 'namespace/name' of every Service's load-balancer address, the Service BUT aside."""
    held = {}
    for svc in services:
        ref = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ingress.get("ip") and ref != but:
                held[ingress["ip"]] = ref
    return held


def arp_state(neigh_output: str) -> str:
    """The state of the outside client's neighbour entry (`ip neigh show ADDR`): its MAC address
    when a node answered ARP for it, else its state (FAILED, INCOMPLETE) or 'none'."""
    match = re.search(r"lladdr ([0-9a-f:]{17})", neigh_output)
    if match:
        return match.group(1)
    words = neigh_output.split()
    return words[-1] if words else "none"


def _write_address(ctx, svc: dict[str, Any]) -> str:
    ref = f"{ctx.namespace}/{svc['metadata']['name']}"
    if svc["spec"].get("type") != "LoadBalancer" or svc["spec"].get("loadBalancerClass") != CLASS:
        raise SvclabError(f"Service {ref} must be type LoadBalancer with loadBalancerClass {CLASS}",
                          hint="another class would be served (and announced) by the cluster's implementation")
    held = held_addresses(ctx.kube.list("v1", "Service"), but=ref)
    ip = external_ip(svc)
    if ip and ip not in held:
        return ip
    ip = free_address(ctx.topology.pool.addresses(), set(held))
    if ip is None:
        raise SvclabError("every address of svclab's pool is held by a Service", hint="delete LoadBalancer Services")
    ctx.kube.patch_status("v1", "Service", svc["metadata"]["name"],
                          {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}, ctx.namespace)
    return ip


def observe(ctx, spec: Spec) -> Observation:
    svc = service(ctx, spec.service)
    ip, port = _write_address(ctx, svc), int(svc["spec"]["ports"][0]["port"])
    try:
        return _observe_address(ctx, spec, ip, port)
    finally:
        # The Service goes back to pending, as the lab applies it: a rerun starts from there.
        ctx.kube.patch_status("v1", "Service", spec.service, {"status": {"loadBalancer": {"ingress": None}}},
                              ctx.namespace)


def _observe_address(ctx, spec: Spec, ip: str, port: int) -> Observation:
    from ...network import docker_client

    evidence = [f"svclab wrote {ip} into Service {ctx.namespace}/{spec.service}'s status and announces it nowhere"]
    mode, service_ref = proxy_mode(ctx.kube), f"{ctx.namespace}/{spec.service}"
    nodes = sorted(node_containers(docker_client(), ctx.settings.cluster_name, stopped=False), key=lambda c: c.name)

    def rules_naming_address() -> dict[str, int]:
        found = {}
        for node in nodes:
            lines = [line for section in node_rules(node, mode, service_ref).sections.values() for line in section]
            found[node.name] = sum(1 for line in lines if re.search(rf"(?<![\d.]){re.escape(ip)}(?!\d)", line))
        return found

    # kube-proxy programs a new address within a second or two: requests wait for it, not for a timeout.
    captured, _ = poll(rules_naming_address, lambda found: all(found.values()), timeout=RULES_DEADLINE,
                       interval=0.5)
    from_pod = dial(ctx, "pod", ip, port, "hostname", spec.tries)
    from_outside = outside_dial(ctx, ip, port, "hostname", spec.tries, timeout=1)
    _, neigh = outside_run(ctx, f"ip neigh show {ipaddress.IPv4Address(ip)}", timeout=5)
    arp = arp_state(neigh)
    pod_got, out_got = from_pod.get("responses", []), from_outside.get("responses", [])
    evidence += [
        f"client pod → {ip}:{port}: {len(pod_got)}/{spec.tries} answered"
        + (f"; saw {', '.join(sorted(set(pod_got)))}" if pod_got else f"; error: {(from_pod.get('errors') or [''])[0][:120]}"),
        f"outside → {ip}:{port}: {len(out_got)}/{spec.tries} answered"
        + ("" if out_got else f"; error: {(from_outside.get('errors') or [''])[0][:120]}"),
        f"outside client's neighbour entry for {ip}: "
        + (f"{arp} (a node answered ARP)" if ":" in arp else f"{arp} (nobody answered ARP)"),
        "kube-proxy rules naming the address, per node (" + mode + "): "
        + ", ".join(f"{name} {count}" for name, count in captured.items()),
    ]
    facts = {"address": ip, "tries": spec.tries, "pod_answered": len(pod_got), "outside_answered": len(out_got),
             "arp": arp, "captured": captured, "pod_backends": sorted(set(pod_got))}
    observed = (f"pod {len(pod_got)}/{spec.tries}, outside {len(out_got)}/{spec.tries} answered; "
                f"in the rules of {sum(1 for c in captured.values() if c)}/{len(captured)} nodes")
    return Observation(observed, evidence, facts)


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems, tries = [], facts.get("tries", 0)
    for key, want in expect.given().items():
        if key == "pod_answers":
            problems += answer_count_problems(want, facts.get("pod_answered", 0), tries, "requests from the pod")
        elif key == "outside_answers":
            problems += answer_count_problems(want, facts.get("outside_answered", 0), tries, "requests from outside")
        elif key == "captured_on_every_node":
            captured = facts.get("captured") or {}
            holding = [n for n, count in captured.items() if count]
            if want and (not captured or len(holding) < len(captured)):
                problems.append(f"the address is in the rules of {len(holding)} of {len(captured)} nodes")
            if not want and holding:
                problems.append(f"the address is in the rules of {', '.join(holding)}")
    return problems
