"""dns: resolve a Service's cluster DNS name inside the in-cluster client pod."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from ..base import HOST_NAME, NAME, Expectation, Observation, Prediction, ProbeSpec, Topology
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
    cluster_ip: bool | None = Field(None, description="The Service has a ClusterIP (false: None, a headless or ExternalName Service).")
    addresses: Literal["ready-pods", "all-pods"] | None = Field(
        None, description="The name's A records are exactly the selected pods' addresses: the ready ones, or all.")
    alias_of: str | None = Field(
        None, pattern=HOST_NAME, description="The name is a CNAME: the resolver answers with this canonical name.")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "resolves_to_cluster_ip": lambda: "resolves to the ClusterIP" if value else "does not resolve to the ClusterIP",
            "cluster_ip": lambda: "has a ClusterIP" if value else "no ClusterIP",
            "addresses": lambda: "one address per ready pod" if value == "ready-pods" else "one address per pod, ready or not",
            "alias_of": lambda: f"an alias of {value}",
        }[key]()

    def prediction(self) -> Prediction | None:
        if self.addresses:
            right = "the ready pods" if self.addresses == "ready-pods" else "every pod"
            return Prediction(("the ClusterIP", "the ready pods", "every pod"), right)
        if self.resolves_to_cluster_ip is None:
            return None
        right = "the ClusterIP" if self.resolves_to_cluster_ip else "something else"
        return Prediction(("the ClusterIP", "something else"), right)


class Spec(ProbeSpec[Expect]):
    """Looks up <service>.<namespace>.svc.cluster.local from the in-cluster client pod."""

    kind: Literal["dns"]
    service: str = Field(pattern=NAME, description="A Service in the lab's namespace.")


def parse_hosts(output: str) -> tuple[list[str], list[str]]:
    """(addresses, names) of `getent hosts` output: one line per address, each with the canonical
    name first and the aliases (the name asked, when it was a CNAME) after it."""
    addresses, names = [], []
    for line in output.splitlines():
        words = line.split()
        if words:
            addresses.append(words[0])
            names += [w for w in words[1:] if w not in names]
    return addresses, names


def _pods(ctx, svc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(ready, all) addresses of the pods SVC selects."""
    selector = ",".join(f"{k}={v}" for k, v in sorted((svc["spec"].get("selector") or {}).items()))
    if not selector:
        return [], []
    pods = [p for p in ctx.kube.list("v1", "Pod", ctx.namespace, label_selector=selector)
            if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")]
    ready = [p["status"]["podIP"] for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                     for c in p["status"].get("conditions") or [])]
    return sorted(ready), sorted(p["status"]["podIP"] for p in pods)


def observe(ctx, spec: Spec) -> Observation:
    svc = service(ctx, spec.service)
    name = f"{spec.service}.{ctx.namespace}.svc.cluster.local"
    text = ctx.kube.get_json(f"/api/v1/namespaces/svclab-system/pods/{ctx.client_pod}:8080/proxy/shell",
                             [("cmd", f"getent hosts {name}")], timeout=ctx.settings.probe_timeout + 10)
    output = json.loads(text).get("output", "")
    addresses, names = parse_hosts(output)
    cluster_ip = svc["spec"].get("clusterIP")
    ready, every = _pods(ctx, svc)
    evidence = [f"pod {ctx.client_pod}: getent hosts {name} → " + ("; ".join(output.strip().splitlines()) or "(no answer)"),
                f"Service {spec.service}: type {svc['spec'].get('type', 'ClusterIP')}, ClusterIP {cluster_ip or 'none'}"
                + (f", externalName {svc['spec']['externalName']}" if svc["spec"].get("externalName") else "")]
    if every:
        evidence.append(f"pods selected: {len(every)} ({', '.join(every)}), ready: {len(ready)}")
    canonical = names[0] if names and names[0] != name else None
    return Observation(
        observed=f"{name} → {', '.join(addresses) or 'nothing'}" + (f" (alias of {canonical})" if canonical else ""),
        evidence=evidence,
        facts={"value": addresses[0] if addresses else None, "addresses": sorted(addresses), "names": names,
               "cluster_ip": cluster_ip if cluster_ip not in (None, "None") else None,
               "ready_pods": ready, "all_pods": every},
    )


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    value, cluster_ip = facts.get("value"), facts.get("cluster_ip")
    if expect.resolves_to_cluster_ip is not None and (value is not None and value == cluster_ip) != expect.resolves_to_cluster_ip:
        problems.append(f"resolved to {value!r}, ClusterIP is {cluster_ip!r}")
    if expect.cluster_ip is not None and bool(cluster_ip) != expect.cluster_ip:
        problems.append(f"ClusterIP {cluster_ip}" if cluster_ip else "no ClusterIP")
    if expect.addresses is not None:
        want = facts.get("ready_pods" if expect.addresses == "ready-pods" else "all_pods") or []
        got = facts.get("addresses") or []
        if sorted(got) != sorted(want) or not want:
            problems.append(f"answered {', '.join(got) or 'nothing'}, the pods are {', '.join(want) or 'none'}")
        elif expect.addresses == "all-pods" and len(want) == len(facts.get("ready_pods") or []):
            problems.append("every selected pod is ready: nothing tells ready-pods and all-pods apart")
    if expect.alias_of is not None and (facts.get("names") or [None])[0] != expect.alias_of:
        problems.append(f"canonical name {(facts.get('names') or ['none'])[0]}")
    return problems
