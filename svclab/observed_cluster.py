"""A lab's cluster as its run observed it: the nodes with their addresses and the lab's pods on
each, the clients, the load-balancer addresses and the node answering for each, and the machines
beside the cluster the probes went through.

Read from the results document's per-lab ``topology`` (labs.topology_record); a document written
before svclab recorded it gives what the probes' facts and evidence show, marked as inferred.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .probe_paths import IPV4, ProbePath, lb_holders, parse_traffic_line

__all__ = ["NodeBox", "ClusterView", "cluster_view", "node_addresses", "node_names"]

EDGE_LABELS = {"router": "BGP router", "haproxy": "HAProxy", "dns": "DNS server"}
EDGE_ADDRESS = {"router": re.compile(r"router \S+ \(AS \d+\) at (\S+);"),
                "haproxy": re.compile(r"HAProxy at ([\d.]+)"),
                "dns": re.compile(r"DNS server at ([\d.]+)")}


@dataclasses.dataclass(frozen=True)
class NodeBox:
    name: str
    ip: str
    backend: bool
    pods: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ClusterView:
    nodes: tuple[NodeBox, ...]
    client_ip: str | None
    client_pod_ip: str | None
    pool_range: str | None
    lbs: tuple[tuple[str, str | None], ...]     # (address, the node answering for it, if seen)
    edges: tuple[tuple[str, str], ...]           # (edge:<what>, its label)
    recorded: bool                               # False: inferred from facts (no topology in the file)

    @property
    def pods(self) -> dict[str, str]:
        return {pod: n.name for n in self.nodes for pod in n.pods}


def node_names(doc: Mapping[str, Any]) -> list[str]:
    """Every node name the document's facts mention (for documents without a topology)."""
    names: set[str] = set()
    for r in doc.get("results", []):
        facts = r.get("facts") or {}
        for key in ("backend_nodes", "via_nodes", "next_hops", "entry_nodes", "eligible_nodes"):
            names.update(str(n) for n in facts.get(key) or [])
        for key in ("peers", "status", "codes", "sessions", "first_by_node", "captured"):
            if isinstance(facts.get(key), dict):
                names.update(str(n) for n in facts[key])
        for key in ("holder_before", "holder_after", "cut_node"):
            if facts.get(key):
                names.add(str(facts[key]))
        if isinstance(facts.get("nodes"), dict):
            names.update(str(n) for n in facts["nodes"].values())
    names.discard("none")
    return sorted(names)


def node_addresses(doc: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
    """Node name -> address, as the document's facts and evidence show them ("<node> <ip>:<port>")."""
    found: dict[str, str] = {}
    for r in doc.get("results", []):
        nodes = (r.get("facts") or {}).get("nodes")
        if isinstance(nodes, dict):
            found.update({str(name): str(ip) for ip, name in nodes.items()})
        for line in r.get("evidence") or []:
            for name, ip in re.findall(r"(\S+) (\d{1,3}(?:\.\d{1,3}){3}):\d+", line):
                if name in names:
                    found.setdefault(name, ip)
    return found


def _recorded_nodes(topology: Mapping[str, Any]) -> list[NodeBox]:
    pods = topology.get("pods") or {}
    return [NodeBox(str(n["name"]), str(n.get("ip") or ""), bool(n.get("backend")),
                    tuple(sorted(p for p, node in pods.items() if node == n["name"])))
            for n in topology.get("nodes") or []]


def _inferred_nodes(doc: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> list[NodeBox]:
    names = node_names(doc)
    ips = node_addresses(doc, names)
    pods: dict[str, str] = {}
    for r in results:
        for line in r.get("evidence") or []:
            parsed = parse_traffic_line(line)
            for pod, node in (parsed.pods if parsed else ()):
                if node in names:
                    pods[pod] = node
    backend = {n for r in results for n in (r.get("facts") or {}).get("backend_nodes") or []}
    return [NodeBox(n, ips.get(n, ""), n in backend, tuple(sorted(p for p, node in pods.items() if node == n)))
            for n in names]


def _client_ip(results: Sequence[Mapping[str, Any]]) -> str | None:
    for r in results:
        for line in r.get("evidence") or []:
            if match := re.search(r"saw (\d{1,3}(?:\.\d{1,3}){3}) \(client\)", line):
                return match.group(1)
    return None


def _edges(results: Sequence[Mapping[str, Any]], paths: Sequence[ProbePath]) -> list[tuple[str, str]]:
    used = sorted({p for path in paths for leg in path.legs for p in leg.places if p.startswith("edge:")})
    edges = []
    for place in used:
        what = place[5:]
        label = EDGE_LABELS.get(what, what)
        address = next((m.group(1) for r in results for line in r.get("evidence") or []
                        if (m := EDGE_ADDRESS[what].search(line))), None) if what in EDGE_ADDRESS else None
        edges.append((place, f"{label} {address}" if address else label))
    return edges


def lb_addresses(results: Sequence[Mapping[str, Any]]) -> set[str]:
    """The load-balancer addresses the lab's probes name (a LoadBalancer's own, from the pool)."""
    found = set()
    for r in results:
        facts = r.get("facts") or {}
        if facts.get("in_pool") and isinstance(facts.get("value"), str):
            found.add(facts["value"])
        found.update(lb_holders(r))
        for line in r.get("evidence") or []:
            parsed = parse_traffic_line(line)
            if parsed and parsed.target.startswith("load balancer ") and (ip := IPV4.search(parsed.target)):
                found.add(ip.group(1))
    return found


def cluster_view(doc: Mapping[str, Any], lab: str, results: Sequence[Mapping[str, Any]],
                 paths: Sequence[ProbePath] = ()) -> ClusterView:
    """LAB's cluster: from the document's topology for it, else inferred from RESULTS (the lab's)."""
    topology = (doc.get("topology") or {}).get(lab)
    holders: dict[str, str] = {}
    for r in results:   # the first probe to see an address names its holder: before any was cut off
        for ip, holder in lb_holders(r).items():
            holders.setdefault(ip, holder)
    drawn = {p[3:] for path in paths for leg in path.legs for p in leg.places if p.startswith("lb:")}
    lbs = tuple((ip, holders.get(ip)) for ip in sorted(drawn | lb_addresses(results) | set(holders)))
    edges = tuple(_edges(results, paths))
    if isinstance(topology, dict) and topology.get("nodes"):
        pool = topology.get("pool") or {}
        return ClusterView(tuple(_recorded_nodes(topology)), topology.get("client_ip"), topology.get("client_pod_ip"),
                           pool.get("range"), lbs, edges, True)
    return ClusterView(tuple(_inferred_nodes(doc, results)), _client_ip(results), None, None, lbs, edges, False)
