"""The path each probe's traffic took, read back from a result (its evidence lines and facts): from
which client, through which load-balancer address, router, HAProxy or node, to which pods, and
where the source address was rewritten. Pure functions of a results document's entries; a probe
that sent no traffic (it read the API) has no legs.

Places on the path are named the way the diagram names its boxes:
    outside, pod-client       the outside client container, svclab's in-cluster client pod
    lb:<ip>                   a load-balancer address
    svc                       a ClusterIP or Service DNS name (virtual: every node's kube-proxy)
    edge:<what>               a machine beside the cluster: edge:router, edge:haproxy, edge:dns
    node:<name>, pod:<name>   a node (also where a client in the node's own network sends from),
                              a pod of the lab
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Leg", "ProbePath", "probe_path", "parse_traffic_line", "lb_holders"]

# "<source> → <target>: 3/4 answered<rest>", as the traffic probes write their evidence.
TRAFFIC_LINE = re.compile(r"^(?P<source>.+?) → (?P<target>.+?): (?P<got>\d+)/(?P<tries>\d+) answered(?P<rest>.*)$")
IPV4 = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
VIA_NODE = re.compile(r"via node (\S+)")
HELD_BY = re.compile(r"reports the address held by node (\S+)")


@dataclasses.dataclass(frozen=True)
class Leg:
    """One stretch of traffic: the places it went through, in order, and whether it was answered."""

    places: tuple[str, ...]
    answered: bool
    source_seen: str | None = None   # what the backend saw as source: "node" (rewritten) or "client"


@dataclasses.dataclass(frozen=True)
class ProbePath:
    legs: tuple[Leg, ...]
    cut_node: str | None = None      # the node the probe cut off, if it did

    @property
    def traffic(self) -> bool:
        return bool(self.legs)


@dataclasses.dataclass(frozen=True)
class TrafficLine:
    source: str
    target: str
    answered: int
    tries: int
    via_node: str | None
    pods: tuple[tuple[str, str | None], ...]   # (pod, its node or None)
    sources_seen: tuple[str, ...]               # "node" / "client" per address the backend saw


def parse_traffic_line(line: str) -> TrafficLine | None:
    match = TRAFFIC_LINE.match(line)
    if not match:
        return None
    rest = match["rest"]
    via = VIA_NODE.search(rest)
    pods, seen = [], []
    saw = re.search(r"(?:saw|answered by) (.*?)(?:; error:|$)", rest)
    for item in (saw.group(1).split(", ") if saw else []):
        item = item.strip()
        if IPV4.match(item):
            seen.append("client" if "(client)" in item else "node" if "(node" in item else "other")
        elif " on " in item:
            pod, _, node = item.partition(" on ")
            pods.append((pod, None if node == "?" else node))
        elif item:
            pods.append((item.split()[0], None))
    return TrafficLine(match["source"].strip(), match["target"].strip(), int(match["got"]), int(match["tries"]),
                       via.group(1) if via else None, tuple(pods), tuple(seen))


def lb_holders(result: Mapping[str, Any]) -> dict[str, str]:
    """Load-balancer address -> the node that answers for it, as this result saw it (the client's
    ARP entry first, else what the provider reported)."""
    found: dict[str, str] = {}
    reported = next((m.group(1) for line in result.get("evidence") or [] if (m := HELD_BY.search(line))), None)
    for line in result.get("evidence") or []:
        parsed = parse_traffic_line(line)
        if parsed and parsed.target.startswith("load balancer "):
            ip = IPV4.search(parsed.target)
            holder = parsed.via_node or reported
            if ip and holder:
                found[ip.group(1)] = holder
    facts = result.get("facts") or {}
    if facts.get("holder_before") and facts.get("address"):
        found[str(facts["address"])] = facts["holder_before"]
    if facts.get("next_hops") and facts.get("address"):   # BGP: every next hop announces it
        found.setdefault(str(facts["address"]), ", ".join(facts["next_hops"]))
    return found


# How the http probe names a lab's client in its node's own network namespace (hostNetwork).
HOST_NETWORK = ", in the node's network"


def _source_place(source: str, client_ip: str | None, pods: Mapping[str, str]) -> str:
    if source.startswith("pod ") and " on " in source:
        name, _, node = source[4:].partition(" on ")
        if node.endswith(HOST_NETWORK):   # the traffic starts on the node itself
            return f"node:{node[:-len(HOST_NETWORK)]}"
        return f"pod:{name}" if name in pods else "pod-client"
    if "pod" in source:
        return "pod-client"
    return "outside"


def _target_places(target: str, lb_addresses: set[str], node_ips: Mapping[str, str]) -> tuple[str, ...]:
    ip = IPV4.search(target)
    first = target.split()[0] if target else ""
    if first in node_ips.values():
        return (f"node:{first}",)
    if target.startswith("load balancer ") and ip:
        return (f"lb:{ip.group(1)}",)
    if target.startswith("ClusterIP") or ".svc.cluster.local" in target:
        return ("svc",)
    if ip and ip.group(1) in node_ips:
        return (f"node:{node_ips[ip.group(1)]}",)
    if ip and ip.group(1) in lb_addresses:
        return (f"lb:{ip.group(1)}",)
    return ("svc",) if ip and ip.group(1).startswith("10.96.") else ((f"lb:{ip.group(1)}",) if ip else ())


def _traffic_legs(result: Mapping[str, Any], *, node_ips: Mapping[str, str], pods: Mapping[str, str],
                  lb_addresses: set[str], client_ip: str | None, holders: Mapping[str, str]) -> list[Leg]:
    legs = []
    for line in result.get("evidence") or []:
        parsed = parse_traffic_line(line)
        if parsed is None:
            continue
        places = [_source_place(parsed.source, client_ip, pods), *_target_places(parsed.target, lb_addresses, node_ips)]
        places = [p for i, p in enumerate(places) if i == 0 or p != places[i - 1]]   # a node sending to itself
        if places[-1].startswith("lb:"):
            holder = parsed.via_node or holders.get(places[-1][3:])
            if holder:
                places.append(f"node:{holder}")
        seen = set(parsed.sources_seen)
        source_seen = "node" if "node" in seen else "client" if "client" in seen else None
        known = [(pod, node or pods.get(pod)) for pod, node in parsed.pods]
        if parsed.answered and known:
            for pod, node in known:
                legs.append(Leg((*places, f"pod:{pod}") if node else tuple(places), True, source_seen))
        else:
            legs.append(Leg(tuple(places), parsed.answered > 0, source_seen))
    return legs


def _kind_legs(facts: Mapping[str, Any], nodes: Sequence[str]) -> list[Leg]:
    """The legs of the probes that say where their traffic went in facts, not in traffic lines."""
    address = str(facts.get("address") or "").split(":")[0]
    cut = facts.get("cut_node")
    if "holder_before" in facts:   # failover: the frozen holder, then the node that took over
        legs = [Leg(("outside", f"lb:{address}", f"node:{facts['holder_before']}"), False)]
        if facts.get("holder_after"):
            legs.append(Leg(("outside", f"lb:{address}", f"node:{facts['holder_after']}"), True))
        return legs
    if "next_hops" in facts:       # bgp: client behind the router, the router's next hops
        hops = set(facts.get("next_hops") or []) | set(facts.get("entry_nodes") or [])
        if not address:
            return [Leg(("outside", "edge:router"), False)]
        return [Leg(("outside", "edge:router", f"lb:{address}", f"node:{n}"), n != cut) for n in sorted(hops)] \
            or [Leg(("outside", "edge:router", f"lb:{address}"), False)]
    if "sessions" in facts:        # haproxy: the nodes it sent requests to
        sent = {n for n, count in (facts.get("sessions") or {}).items() if count} | ({cut} if cut else set())
        return [Leg(("outside", "edge:haproxy", f"node:{n}"), n != cut) for n in sorted(sent)] \
            or [Leg(("outside", "edge:haproxy"), bool(facts.get("answered")))]
    if "first_by_node" in facts:   # dns round robin: the node each answer put first
        return [Leg(("outside", "edge:dns", f"node:{n}"), n != cut) for n in sorted(facts["first_by_node"])
                if n in nodes]
    if isinstance(facts.get("codes"), dict):   # health check: each node's answer
        return [Leg(("outside", f"node:{n}"), code == 200) for n, code in sorted(facts["codes"].items())]
    if isinstance(facts.get("refused"), list):   # no endpoints: every node refused
        targets = dict.fromkeys(str(r.get("target", "")).split()[0] for r in facts["refused"])
        return [Leg(("outside", f"node:{n}"), False) for n in targets if n in nodes]
    if facts.get("terminator") == "haproxy":   # tls: HAProxy in front of the nodes
        return [Leg(("outside", "edge:haproxy"), bool(facts.get("hosts")))]
    if address:
        return [Leg(("outside", f"lb:{address}"), bool(facts.get("answered", facts.get("hosts", True))))]
    return []


def probe_path(result: Mapping[str, Any], *, nodes: Mapping[str, str], pods: Mapping[str, str],
               lb_addresses: set[str], client_ip: str | None = None,
               holders: Mapping[str, str] | None = None) -> ProbePath:
    """RESULT's path. NODES: node address -> name; PODS: pod -> node; LB_ADDRESSES: the
    load-balancer addresses the lab's probes saw; HOLDERS: address -> the node answering for it."""
    facts = result.get("facts") or {}
    holders = {**(holders or {}), **lb_holders(result)}
    names = list(nodes.values())
    if {"holder_before", "next_hops", "sessions", "first_by_node"} & set(facts) or not any(
            parse_traffic_line(line) for line in result.get("evidence") or []):
        legs = _kind_legs(facts, names)
    else:
        legs = _traffic_legs(result, node_ips=nodes, pods=pods, lb_addresses=lb_addresses, client_ip=client_ip,
                             holders=holders)
    return ProbePath(tuple(legs), facts.get("cut_node") or facts.get("holder_before"))
