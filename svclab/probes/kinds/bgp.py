"""bgp: a Service's address announced by BGP to a router beside the cluster (see probes/edge.py).
Reads the router's own view (its BGP sessions, and the route to the address with one next hop per
announcing node), sends requests from the outside client through the router, and optionally cuts
a node off and times how soon the router withdraws its path, with a continuous prober counting the
requests that failed meanwhile."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from ...errors import SvclabError
from ...kube import poll
from ..base import NAME, CutOffSpec, Expectation, Observation, Prediction, Topology, answer_count_problems
from ..edge import BGP_POOL, HOLD_SECONDS, KEEPALIVE_SECONDS, ensure_edge, router_json
from ..outage import cut_off, spare_node
from ..traffic import external_ip, outside_dial, service, wait_external_ip

OWN_CLUSTER = "runs a BGP router beside svclab's own nodes and peers MetalLB with it"   # why it runs only on a kind cluster svclab made
USES_OUTSIDE = True   # sends from the outside client

EXAMPLE = """
- id: router-learns-the-address
  claim: C22
  path: "outside client → router → EXTERNAL-IP (BGP, one next hop per node)"
  kind: bgp
  service: web-cluster
  expect: {peers: all, next_hops: all, entry_nodes_at_least: 2}
  expect_by_provider:
    kube-vip: {peers: none}
    none: {peers: none}
"""

EXCLUDED = "node.kubernetes.io/exclude-from-external-load-balancers"


class Expect(Expectation):
    peers: Literal["all", "none"] | None = Field(
        None, description="BGP sessions the router has established: one with every node, or none at all.")
    next_hops: Literal["all", "backends"] | None = Field(
        None, description="The router's next hops for the address: every node that may announce, or exactly "
                          "the nodes running a backend pod.")
    answers: bool | None = Field(None, description="Every request through the router answered.")
    entry_nodes_at_least: int | None = Field(
        None, ge=1, description="Requests through the router entered the cluster through at least this many nodes.")
    source: Literal["client", "node"] | None = Field(
        None, description="The source address the backend reports: the client's own, or a node's.")
    withdrawn_within: float | None = Field(
        None, gt=0, description="cut_off: seconds within which the router drops the cut node's path.")
    answers_after: bool | None = Field(
        None, description="cut_off: once the path is withdrawn, every request answers again.")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "peers": lambda: "a session with every node" if value == "all" else "no BGP session",
            "next_hops": lambda: "a next hop per node" if value == "all" else "next hops = the pods' nodes",
            "answers": lambda: "answers through the router" if value else "no answer through the router",
            "entry_nodes_at_least": lambda: f"enters through ≥{value} nodes",
            "source": lambda: "source = client address" if value == "client" else "source = a node address",
            "withdrawn_within": lambda: f"path withdrawn within {value:g}s",
            "answers_after": lambda: "answers after the withdrawal" if value else "no answer after",
        }[key]()

    @property
    def settles(self) -> bool:
        return self.peers != "none" and self.withdrawn_within is None and self.answers_after is None

    def prediction(self) -> Prediction | None:
        if self.next_hops:
            right = "every node" if self.next_hops == "all" else "only the pods' nodes"
            return Prediction(("every node", "only the pods' nodes"), right)
        if self.peers == "none":
            return Prediction(("routes", "no route"), "no route")
        return None


class Spec(CutOffSpec[Expect]):
    """Gives SERVICE an address from the BGP pool, reads the router and sends TRIES requests
    through it; with CUT_OFF, cuts off a node without a backend pod and probes through the router
    until its path is withdrawn (at most WITHIN seconds), then restores it."""

    CUT_OFF_KEYS: ClassVar[tuple[str, ...]] = ("withdrawn_within", "answers_after")

    kind: Literal["bgp"]
    service: str = Field(pattern=NAME, description=f"A LoadBalancer Service asking for MetalLB's pool {BGP_POOL}.")
    tries: int = Field(16, ge=1, le=100, description="Requests through the router.")
    within: float = Field(30, gt=0, le=120, description="cut_off: seconds to wait for the withdrawal.")


def _peers(edge, names: dict[str, str]) -> dict[str, str]:
    peers = (router_json(edge, "show bgp summary").get("ipv4Unicast") or {}).get("peers") or {}
    return {names.get(ip.lstrip("*"), ip.lstrip("*")): p.get("state", "?") for ip, p in peers.items()}


def _next_hops(edge, ip: str, names: dict[str, str]) -> list[str]:
    """The nodes the router's installed route to IP/32 goes through (FIB entries only)."""
    routes = router_json(edge, f"show ip route {ip}/32").get(f"{ip}/32") or []
    hops = {names.get(h.get("ip", ""), h.get("ip", "?")) for r in routes if r.get("protocol") == "bgp"
            and r.get("installed") for h in r.get("nexthops") or [] if h.get("fib") or h.get("active")}
    return sorted(hops)


def observe(ctx, spec: Spec) -> Observation:
    speakers = ctx.env.provider.name == "metallb"
    edge = ensure_edge(ctx, speakers=speakers)
    nodes = {n["metadata"]["name"]: n for n in ctx.kube.list("v1", "Node")}
    names = {t.ip: t.name for t in ctx.topology.nodes}
    eligible = sorted(name for name, n in nodes.items() if EXCLUDED not in (n["metadata"].get("labels") or {}))
    evidence = [f"router {edge.router} (AS 64500) at {edge.router_ip}; client {edge.client_ip} behind it on "
                f"{edge.subnet}, route to {edge.pool} via {edge.router_edge_ip}"]
    facts: dict[str, Any] = {"eligible_nodes": eligible, "backend_nodes": ctx.topology.backend_nodes,
                             "client_ip": edge.client_ip, "speakers": speakers}
    if not speakers:
        # Nothing in the cluster speaks BGP: the router waits for sessions that never come.
        peers, _ = poll(lambda: _peers(edge, names), bool, timeout=2 * KEEPALIVE_SECONDS, interval=0.5)
        ip = external_ip(service(ctx, spec.service))
        facts.update(peers=peers, address=ip, next_hops=_next_hops(edge, ip, names) if ip else [])
        evidence.append(f"router's BGP sessions after {2 * KEEPALIVE_SECONDS}s: {_listed(peers)}; "
                        f"{ctx.env.provider.name} speaks no BGP")
        return Observation(f"{len(peers)} BGP sessions, no route", evidence, facts)
    ip = wait_external_ip(ctx, spec.service, ctx.settings.wait_timeout)
    if not ip:
        raise SvclabError(f"Service {spec.service} got no address from pool {BGP_POOL}")
    port = int(service(ctx, spec.service)["spec"]["ports"][0]["port"])
    want = set(eligible) if service(ctx, spec.service)["spec"].get("externalTrafficPolicy") != "Local" \
        else set(ctx.topology.backend_nodes) & set(eligible)
    # Sessions come up and routes arrive within a few keepalives of the set-up.
    (peers, hops), _ = poll(lambda: (_peers(edge, names), _next_hops(edge, ip, names)),
                            lambda seen: set(seen[1]) == want
                            and all(s == "Established" for s in seen[0].values()) and len(seen[0]) >= len(eligible),
                            timeout=ctx.settings.wait_timeout / 2, interval=0.5)
    evidence.append(f"router's BGP sessions: {_listed(peers)}")
    evidence.append(f"router's route to {ip}/32: next hops {', '.join(hops) or 'none'}")
    excluded = sorted(set(nodes) - set(eligible))
    if excluded:
        evidence.append(f"not announcing (label {EXCLUDED}): {', '.join(excluded)}")
    got = outside_dial(ctx, ip, port, "clientip", spec.tries, also=(edge.subnet,))
    sources = [r.rsplit(":", 1)[0] for r in got.get("responses") or []]
    entry = sorted({ctx.topology.node_owning(s) or s for s in sources if s != edge.client_ip})
    evidence.append(f"{len(sources)}/{spec.tries} requests through the router answered; the backend saw "
                    + (f"the client's own address {edge.client_ip}" if sources and all(s == edge.client_ip for s in sources)
                       else f"node sources: entered through {', '.join(entry) or 'none'}"))
    facts.update(address=ip, peers=peers, next_hops=hops, tries=spec.tries, answered=len(sources),
                 sources=sources, entry_nodes=entry)
    if spec.cut_off:
        facts.update(_withdrawal(ctx, spec, edge, ip, port, names, evidence))
    summary = f"{ip}: next hops {', '.join(hops) or 'none'}; {len(sources)}/{spec.tries} answered"
    if spec.cut_off:
        took = facts.get("withdrawn_after")
        summary += (f"; {facts['cut_node']} withdrawn after {took:.1f}s" if took is not None
                    else f"; {facts['cut_node']} not withdrawn") + f", {facts['failed_during']} failed"
    return Observation(summary, evidence, facts)


def _listed(peers: dict[str, str]) -> str:
    return ", ".join(f"{n} {s}" for n, s in sorted(peers.items())) or "none"


def _withdrawal(ctx, spec: Spec, edge, ip: str, port: int, names: dict[str, str], evidence: list[str]) -> dict[str, Any]:
    node = spare_node(ctx)
    sent: list[tuple[float, bool]] = []
    attempts: list[dict[str, Any]] = []   # each: seconds after the cut, answered, the pod and its node

    def one_round() -> list[str]:
        got = outside_dial(ctx, ip, port, "hostname", 1, timeout=1, also=(edge.subnet,)).get("responses") or []
        sent.append((time.monotonic() - started, bool(got)))
        attempts.append({"at": round(sent[-1][0], 2), "answered": bool(got), "pod": got[0] if got else None,
                         "node": ctx.topology.pod_nodes.get(got[0]) if got else None})
        return _next_hops(edge, ip, names)

    with cut_off(ctx, node):
        evidence.append(f"cut {node} off the network")
        started = time.monotonic()
        hops, _ = poll(one_round, lambda h: node not in h, timeout=spec.within, interval=0.1)
        withdrawn = time.monotonic() - started if node not in hops else None
        after = [bool(outside_dial(ctx, ip, port, "hostname", 1, timeout=1, also=(edge.subnet,)).get("responses"))
                 for _ in range(8)]
    failed = [t for t, ok in sent if not ok]
    window = (failed[-1] - failed[0]) if failed else 0.0
    evidence.append(f"router withdrew {node}'s path after {withdrawn:.1f}s (hold time {HOLD_SECONDS}s)"
                    if withdrawn is not None else f"router kept {node}'s path for {spec.within:g}s")
    evidence.append(f"prober through the router meanwhile: {len(sent)} requests, {len(failed)} failed"
                    + (f", from {failed[0]:.1f}s to {failed[-1]:.1f}s" if failed else ""))
    evidence.append(f"after the withdrawal: {sum(after)}/{len(after)} answered; next hops {', '.join(hops) or 'none'}; "
                    f"restored {node}")
    return {"cut_node": node, "withdrawn_after": None if withdrawn is None else round(withdrawn, 2),
            "sent_during": len(sent), "failed_during": len(failed), "outage_window": round(window, 2),
            "answered_after": sum(after), "tried_after": len(after), "next_hops_after": hops, "attempts": attempts}


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    peers = facts.get("peers") or {}
    eligible = set(facts.get("eligible_nodes") or [])
    if expect.peers == "none" and peers:
        problems.append(f"{len(peers)} BGP session{'s' if len(peers) > 1 else ''}")
    if expect.peers == "all":
        missing = sorted(eligible - {n for n, s in peers.items() if s == "Established"})
        if missing or not eligible:
            problems.append(f"no established session with {', '.join(missing) or 'any node'}")
    if expect.next_hops is not None:
        want = eligible if expect.next_hops == "all" else eligible & set(facts.get("backend_nodes") or [])
        hops = set(facts.get("next_hops") or [])
        if hops != want or not want:
            problems.append(f"next hops {', '.join(sorted(hops)) or 'none'}, not {', '.join(sorted(want)) or 'none'}")
    if expect.answers is not None:
        problems += answer_count_problems(expect.answers, facts.get("answered", 0), facts.get("tries", 0),
                                          "requests through the router")
    if expect.entry_nodes_at_least is not None and len(facts.get("entry_nodes") or []) < expect.entry_nodes_at_least:
        problems.append(f"entered through {len(facts.get('entry_nodes') or [])} node(s)")
    if expect.source is not None:
        sources = facts.get("sources") or []
        client = facts.get("client_ip")
        if not sources:
            problems.append("no answer")
        elif expect.source == "client" and any(s != client for s in sources):
            problems.append(f"{sum(s != client for s in sources)} of {len(sources)} answers saw another source")
        elif expect.source == "node" and any(s == client for s in sources):
            problems.append(f"{sum(s == client for s in sources)} of {len(sources)} answers saw the client")
    if expect.withdrawn_within is not None:
        took = facts.get("withdrawn_after")
        if took is None:
            problems.append(f"{facts.get('cut_node', 'the cut node')}'s path was never withdrawn")
        elif took > expect.withdrawn_within:
            problems.append(f"withdrawn after {took:.1f}s")
    if expect.answers_after is not None:
        problems += answer_count_problems(expect.answers_after, facts.get("answered_after", 0),
                                          facts.get("tried_after", 0), "requests after the withdrawal")
    return problems
