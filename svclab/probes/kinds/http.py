"""http: requests from a client to a Service, through its ClusterIP, its DNS name, every node's
nodePort, or its load-balancer address (optionally with a Host header, for Ingress rules)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from ...cancel import Workers, bound_cancel
from ...errors import SvclabError
from ...probe_paths import HOST_NETWORK
from ..base import HOST_NAME, NAME, Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import arp_holder, dial, is_this_machine, lab_clients, outside_dial, service, wait_external_ip



def uses_outside(spec: "Spec") -> bool:
    return spec.from_ == "outside"


def from_this_machine(spec: "Spec") -> str | None:
    """Why this machine cannot send SPEC as the outside client (svclab.this_machine), or None."""
    if spec.via in ("node-port", "load-balancer"):
        return None
    return (f"sends to the {'ClusterIP' if spec.via == 'cluster-ip' else 'DNS name'} from outside the cluster; "
            "this machine, the outside client here, has routes beyond the cluster, and svclab sends it nothing "
            "but node and load-balancer addresses")


def to_cluster_networks(spec: "Spec") -> bool:
    return spec.from_ == "outside" and spec.via in ("cluster-ip", "dns")


def to_nodes(spec: "Spec") -> bool:
    return spec.via == "node-port"


def own_cluster(spec: "Spec") -> str | None:
    """Why SPEC needs a cluster svclab made, or None."""
    if spec.nodes == "loopback":
        return ("whether 127.0.0.1:nodePort answers also hangs on kube-proxy's localhostNodePorts and "
                "nodePortAddresses settings, known only on the clusters svclab makes")
    return None


EXAMPLE = """
- id: every-node
  claim: C5
  path: outside client → every node's IP:nodePort
  kind: http
  from: outside
  service: echo
  via: node-port
  nodes: all
  tries: 2
  expect: {answers: true}
"""


class Expect(Expectation):
    answers: bool | None = Field(None, description="true: every target answers every request; false: none answers at all.")
    source: Literal["client", "node"] | None = Field(
        None, description="The source address the backend reports (request: clientip): the client's own, or a node's.")
    min_backends: int | None = Field(None, ge=1, description="At least this many different pods answered.")
    max_backends: int | None = Field(
        None, ge=1, description="At most this many different pods answered (1: every request reached the same pod).")
    min_backend_nodes: int | None = Field(None, ge=1, description="Those pods ran on at least this many nodes.")
    backend_prefix: str | None = Field(None, min_length=1, description="Every answer came from a pod whose name starts so.")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "answers": lambda: "answers" if value else "no answer",
            "source": lambda: "source = client address" if value == "client" else "source = a node address",
            "min_backends": lambda: f"≥{value} backends",
            "max_backends": lambda: "always the same pod" if value == 1 else f"≤{value} backends",
            "min_backend_nodes": lambda: f"on ≥{value} nodes",
            "backend_prefix": lambda: f"served by {value}*",
        }[key]()

    @property
    def settles(self) -> bool:
        return self.answers is not False

    def prediction(self) -> Prediction | None:
        if self.source:
            return Prediction(("client", "node"), self.source)
        if self.max_backends == 1:
            return Prediction(("the same pod", "different pods"), "the same pod")
        if self.answers is not None and len(self.given()) == 1:
            return Prediction(("answers", "no answer"), "answers" if self.answers else "no answer")
        return None


class Spec(ProbeSpec[Expect]):
    """Sends TRIES requests for REQUEST to each target of SERVICE reached VIA, from a client."""

    kind: Literal["http"]
    service: str = Field(description="The Service: NAME in the lab's namespace, or NAMESPACE/NAME.")
    via: Literal["cluster-ip", "dns", "node-port", "load-balancer"] = Field(
        description="Which address: the ClusterIP, the DNS name, every chosen node's nodePort, the external address.")
    from_: Literal["outside", "pod"] = Field(
        "outside", alias="from", description="outside: the client container beside the nodes; pod: the in-cluster client.")
    nodes: Literal["all", "backend", "no-backend", "client", "loopback"] = Field(
        "all", description=(
            "With via node-port: every node, the nodes running a backend pod, the others, the node the lab's client "
            "runs on (client), or 127.0.0.1 there (loopback: the client must use the node's network, hostNetwork)."))
    request: Literal["hostname", "clientip"] = Field(
        "hostname", description="hostname: which pod answered; clientip: which source address the pod saw.")
    tries: int = Field(1, ge=1, le=100, description="Requests per target, each on a new connection.")
    host: str | None = Field(None, pattern=HOST_NAME,
                             description="Host header (an Ingress or Gateway rule's host); from outside only.")
    client: str | None = Field(None, pattern=NAME, description=(
        "With from: pod, the lab's own client that sends (the app.kubernetes.io/name of a Deployment or DaemonSet "
        "in the lab whose pods are labelled svclab.io/client: \"true\" and run agnhost netexec), instead of svclab's."))
    client_pods: Literal["one", "every"] = Field("one", description=(
        "With client: one of its running pods sends, or every one of them (a DaemonSet's: one per node), each to "
        "its own targets (with nodes: client or loopback, its own node)."))

    @model_validator(mode="after")
    def _consistent(self):
        if self.host and self.from_ != "outside":
            raise ValueError("host (a Host header) is sent only from the outside client: set from: outside")
        if self.client and self.from_ != "pod":
            raise ValueError("client names a pod of the lab that sends: set from: pod")
        if self.client_pods == "every" and not self.client:
            raise ValueError("client_pods: every sends from each pod of the lab's client: name it with client")
        if self.nodes != "all" and self.via != "node-port":
            raise ValueError("nodes chooses nodePort targets: use it only with via: node-port")
        if self.nodes in ("client", "loopback") and not self.client:
            raise ValueError(f"nodes: {self.nodes} is the node of the lab's client that sends: name it with client "
                             "(and from: pod)")
        return self

    def rules_service(self) -> str | None:
        return self.service if self.via in ("node-port", "load-balancer") else None


def targets(ctx, spec: Spec, client: dict[str, Any] | None = None) -> list[tuple[str, str, int]]:
    """(label, host, port) for every address the probe sends to; CLIENT: the lab's client pod that sends."""
    svc = service(ctx, spec.service)
    port_spec = (svc["spec"].get("ports") or [{}])[0]
    if spec.via == "cluster-ip":
        return [("ClusterIP", svc["spec"]["clusterIP"], port_spec["port"])]
    if spec.via == "dns":
        name = f"{spec.service}.{ctx.namespace}.svc.cluster.local"
        return [(name, name, port_spec["port"])]
    if spec.via == "node-port":
        node_port = port_spec.get("nodePort")
        if not node_port:
            raise SvclabError(f"Service {spec.service} has no nodePort")
        if spec.nodes in ("client", "loopback"):
            return [own_node_target(ctx, spec, client, node_port)]
        backend_nodes = set(ctx.topology.pod_nodes.values())
        return [(f"{n.name} {n.ip}:{node_port}", n.ip, node_port) for n in ctx.topology.nodes
                if spec.nodes == "all" or (spec.nodes == "backend") == (n.name in backend_nodes)]
    # Without an implementation no address will come: do not wait the full deadline for it.
    timeout = ctx.settings.wait_timeout if ctx.env.provider.expects_address else 3
    address = wait_external_ip(ctx, spec.service, timeout, hostnames=True)
    if not address or _is_ip(address):
        return [(f"load balancer {address}", address, port_spec["port"])] if address else []
    # A host name (a cloud's load balancer): only this machine resolves it; svclab's container
    # client has no resolver for names outside the cluster, and no route beyond its network.
    if not is_this_machine(ctx.outside) or spec.from_ != "outside":
        raise SvclabError(f"Service {spec.service}'s load-balancer address is the host name {address}, which only "
                          "this machine can resolve", hint="run with --outside this-machine")
    first = ctx.outside.resolve(address)[0]
    return [(f"load balancer {address} ({first})", first, port_spec["port"])]


def own_node_target(ctx, spec: Spec, client: dict[str, Any], node_port: int) -> tuple[str, str, int]:
    """The nodePort on the node CLIENT (a pod) runs on: at that node's address, or (nodes: loopback)
    at 127.0.0.1, which only a client in the node's own network namespace can send to."""
    node_name = client["spec"].get("nodeName")
    if spec.nodes == "loopback":
        if not client["spec"].get("hostNetwork"):
            raise SvclabError(f"nodes: loopback sends to 127.0.0.1 from the client {spec.client}, whose pod has its own "
                              "network namespace", hint="give the client's pods hostNetwork: true")
        return (f"{node_name} 127.0.0.1:{node_port} (its own loopback)", "127.0.0.1", node_port)
    node = next((n for n in ctx.topology.nodes if n.name == node_name), None)
    if node is None:
        raise SvclabError(f"the client {spec.client} runs on {node_name}, which is not one of the cluster's nodes")
    return (f"{node.name} {node.ip}:{node_port} (the client's own node)", node.ip, node_port)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def observe(ctx, spec: Spec) -> Observation:
    notes = []
    pods = lab_clients(ctx, spec.client) if spec.client else [None]
    pods = pods if spec.client_pods == "every" else pods[:1]
    # (client pod, target): one client's targets, or each pod's own (its node, with nodes: client).
    sends = [(pod, target) for pod in pods for target in targets(ctx, spec, pod)]
    if not sends:
        notes.append(f"Service {spec.service} has no external address")
    elif spec.via == "load-balancer":
        if reported := ctx.env.provider.holder(ctx.kube, ctx.namespace, spec.service):
            notes.append(f"{ctx.env.provider.name} reports the address held by node {reported}")
    topo = ctx.topology
    client_ip = topo.client_ip if spec.from_ == "outside" else topo.client_pod_ip

    def send(pod: dict[str, Any] | None, label: str, host: str, port: int) -> dict[str, Any]:
        if spec.host:
            label += f" (Host: {spec.host})"
            result = outside_dial(ctx, host, port, spec.request, spec.tries, host_header=spec.host)
        else:
            result = dial(ctx, spec.from_, host, port, spec.request, spec.tries, client=pod)
        got = result.get("responses", [])
        via_node = arp_holder(ctx, host) if spec.via == "load-balancer" and spec.from_ == "outside" and got else None
        sample = {"label": label, "responses": got, "errors": result.get("errors", []), "via_node": via_node}
        if pod:
            network = HOST_NETWORK if pod["spec"].get("hostNetwork") else ""
            sample |= {"source": f"pod {pod['metadata']['name']} on {pod['spec'].get('nodeName')}{network}",
                       "client_ip": pod["status"]["podIP"]}
        return sample

    # Every target at once (one per node and client at most): a target that does not answer
    # costs its timeout once, not once per node in turn.
    with Workers(f"http-{spec.id}", cancel=bound_cancel()) as workers:
        samples = [f.result() for f in [workers.submit(send, pod, *target) for pod, target in sends]]
    return summarize(samples, topo, client_ip=client_ip, request=spec.request, tries=spec.tries,
                     source=spec.from_, notes=notes)


def summarize(samples: Sequence[dict[str, Any]], topo: Topology, *, client_ip: str, request: str, tries: int,
              source: str = "outside", notes: Sequence[str] = ()) -> Observation:
    """The samples (per target: the answers, the errors, the node that took the traffic, and
    where a lab's client pod sent it, its "source" and "client_ip") as facts the judge reads,
    evidence lines, and the one-line summary."""
    evidence, backends, backend_nodes, source_kinds, via_nodes = list(notes), set(), set(), [], set()
    answered = silent = responses = errors = 0
    for sample in samples:
        got, errs = sample["responses"], sample["errors"]
        responses += len(got)
        errors += len(errs)
        answered += 1 if got else 0
        silent += 0 if got else 1
        seen = []
        for body in got:
            if request == "clientip":
                ip = body.rsplit(":", 1)[0]
                kind = topo.source_kind(ip, sample.get("client_ip", client_ip))
                source_kinds.append(kind)
                seen.append(f"{ip} ({kind if kind != 'node' else 'node ' + topo.node_owning(ip)})")
            else:
                backends.add(body)
                node = topo.pod_nodes.get(body)
                if node:
                    backend_nodes.add(node)
                seen.append(f"{body} on {node or '?'}")
        line = f"{sample.get('source', source)} → {sample['label']}: {len(got)}/{tries} answered"
        if sample.get("via_node"):
            via_nodes.add(sample["via_node"])
            line += f" via node {sample['via_node']} (the client's ARP entry)"
        if seen:
            line += "; saw " + ", ".join(sorted(set(seen)))
        if errs:
            line += f"; error: {errs[0][:120]}"
        evidence.append(line)
    facts = {"targets": len(samples), "answered_targets": answered, "silent_targets": silent,
             "responses": responses, "errors": errors, "backends": sorted(backends),
             "backend_nodes": sorted(backend_nodes), "source_kinds": source_kinds, "via_nodes": sorted(via_nodes)}
    if request == "clientip" and source_kinds:
        observed = f"source seen by backend: {', '.join(sorted(set(source_kinds)))}"
    elif not samples:
        observed = "no external address"
    elif responses and request == "hostname":
        hops = f" via node {', '.join(sorted(via_nodes))}," if via_nodes else ","
        observed = f"{answered}/{len(samples)} answered{hops} {len(backends)} backends on {len(backend_nodes)} nodes"
    elif responses:
        observed = f"{answered}/{len(samples)} answered"
    else:
        observed = f"none of {len(samples)} answered"
    return Observation(observed, evidence, facts)


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    total, answered = facts.get("targets", 0), facts.get("answered_targets", 0)
    for key, want in expect.given().items():
        if key == "answers":
            if want and (total == 0 or answered != total or facts.get("errors", 0)):
                problems.append(f"{total - answered} of {total} targets did not answer every request")
            if not want and facts.get("responses", 0):
                problems.append(f"{total - facts.get('silent_targets', 0)} of {total} targets answered")
        elif key == "source":
            sources = facts.get("source_kinds", [])
            if not sources:
                problems.append("no source address observed")
            elif any(s != want for s in sources):
                problems.append(f"source addresses were {', '.join(sorted(set(sources)))}")
        elif key == "min_backends" and len(facts.get("backends", [])) < want:
            problems.append(f"reached {len(facts.get('backends', []))} backends")
        elif key == "max_backends" and (len(facts.get("backends", [])) > want or not facts.get("backends")):
            problems.append(f"reached {len(facts.get('backends', []))} backends")
        elif key == "min_backend_nodes" and len(facts.get("backend_nodes", [])) < want:
            problems.append(f"backends on {len(facts.get('backend_nodes', []))} nodes")
        elif key == "backend_prefix":
            others = [b for b in facts.get("backends", []) if not b.startswith(want)]
            if others or not facts.get("backends"):
                problems.append(f"served by {', '.join(others) or 'nobody'}")
    return problems
