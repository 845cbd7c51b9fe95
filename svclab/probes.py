"""Probes: each observes one traffic path or one API behaviour and returns what it saw.

Probe kinds (the vocabulary lab definitions use):

    service   read a field of a Service (its type, ClusterIP, nodePort, external address)
    http      send HTTP requests from a client to a Service: through its ClusterIP, its DNS name,
              every node's NodePort, or its load-balancer address
    addresses list the lab's LoadBalancer Services and Ingresses with the addresses they hold
    policy-flip  switch a live Service's externalTrafficPolicy, show the source address the
              backend sees before and after, and switch it back
    rejects   ask the API server (dry run) to accept a manifest, expecting a refusal
    dns       resolve a Service's cluster DNS name inside a pod
    health-check  ask every node's kube-proxy for a Service's healthCheckNodePort answer
    pending   watch a LoadBalancer Service for a while, expecting no external address
    failover  freeze the node that holds a Service's external address and time how long until the
              address answers again through another node; then thaw it

Clients: ``pod`` is the in-cluster client pod, agnhost netexec reached through the API server's
pod proxy (whose /dial endpoint makes the requests); ``outside`` is the client container on the
cluster's docker network, commanded over the Docker API (outside.py: curl from a shell; it has no
default route and publishes no port, so it can reach nothing beyond that network and nobody
without Docker's authority can command it). The echo backends answer /hostname and /clientip.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

from .errors import SvclabError, UsageError
from .kube import api_error_message, load_manifests, poll
from .outside import dial_script, parse_dial

__all__ = ["Observation", "Topology", "PROBE_KINDS", "check_expectation", "describe_expectation", "observe"]

PROBE_KINDS = ("service", "http", "dns", "health-check", "addresses", "policy-flip", "rejects", "pending",
               "failover")
HTTP_VIA = ("cluster-ip", "dns", "node-port", "load-balancer")
HTTP_FROM = ("pod", "outside")
NODE_SETS = ("all", "backend", "no-backend")


@dataclasses.dataclass
class Observation:
    """What a probe saw: a one-line summary, evidence lines, and facts for expectations/JSON."""

    observed: str
    evidence: list[str]
    facts: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    name: str
    ip: str
    pod_cidr: str | None
    backend: bool

    def owns(self, ip: str) -> bool:
        """True when IP is one of this node's own addresses (InternalIP or pod-network gateway)."""
        if ip == self.ip:
            return True
        if self.pod_cidr:
            net = ipaddress.ip_network(self.pod_cidr, strict=False)
            return ip == str(net.network_address + 1)
        return False


@dataclasses.dataclass(frozen=True)
class Topology:
    nodes: list[NodeInfo]
    pod_nodes: Mapping[str, str]     # pod name -> node name, in the lab's namespace
    client_ip: str                   # the outside client's address
    client_pod_ip: str               # the in-cluster client's address
    pool: Any                        # network.Pool

    def node_owning(self, ip: str) -> str | None:
        return next((n.name for n in self.nodes if n.owns(ip)), None)

    def source_kind(self, ip: str, client_ip: str) -> str:
        """What a source address a backend reports is: the client's own, a node's, or other."""
        return "client" if ip == client_ip else ("node" if self.node_owning(ip) else "other")


# ------------------------------------------------------------------ expectations (pure)

def describe_expectation(expect: Mapping[str, Any]) -> str:
    parts = []
    for key, value in expect.items():
        if key == "answers":
            parts.append("answers" if value else "no answer")
        elif key == "equals":
            parts.append(f"= {value}")
        elif key == "in_range":
            parts.append(f"in {value[0]}–{value[1]}")
        elif key == "set":
            parts.append("set" if value else "not set")
        elif key == "in_pool":
            parts.append("from svclab's pool" if value else "outside the pool")
        elif key == "min_backends":
            parts.append(f"≥{value} backends")
        elif key == "min_backend_nodes":
            parts.append(f"on ≥{value} nodes")
        elif key == "source":
            parts.append("source = client address" if value == "client" else "source = a node address")
        elif key == "message":
            parts.append(f"rejected: /{value}/")
        elif key == "pending":
            parts.append("stays <pending>" if value else "gets an address")
        elif key == "backend_prefix":
            parts.append(f"served by {value}*")
        elif key == "one_address_each":
            parts.append("one external address per LoadBalancer Service" if value else "no external addresses")
        elif key == "flips_source":
            parts.append("the source the backend sees changes with the policy")
        elif key == "recovers_within":
            parts.append(f"answers again within {value}s, from another node")
        elif key == "healthy_where_backends":
            parts.append("200 on nodes with a backend, 503 elsewhere")
        elif key == "resolves_to_cluster_ip":
            parts.append("resolves to the ClusterIP" if value else "does not resolve to the ClusterIP")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def check_expectation(expect: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    """Compares FACTS with EXPECT; returns what differs (empty: as expected)."""
    problems = []
    for key, want in expect.items():
        if key == "answers":
            answered, total = facts.get("answered_targets", 0), facts.get("targets", 0)
            silent = facts.get("silent_targets", 0)
            if want and (total == 0 or answered != total or facts.get("errors", 0)):
                problems.append(f"{total - answered} of {total} targets did not answer every request")
            if not want and facts.get("responses", 0):
                problems.append(f"{total - silent} of {total} targets answered")
        elif key == "equals":
            if facts.get("value") != want:
                problems.append(f"{facts.get('value')!r} is not {want!r}")
        elif key == "in_range":
            v = facts.get("value")
            if not isinstance(v, int) or not want[0] <= v <= want[1]:
                problems.append(f"{v!r} is not within {want[0]}–{want[1]}")
        elif key == "set":
            if bool(facts.get("value") not in (None, "", [], "None")) != want:
                problems.append(f"value is {'set' if not want else 'not set'}")
        elif key == "in_pool":
            if bool(facts.get("in_pool")) != want:
                problems.append(f"{facts.get('value')!r} is {'not ' if want else ''}in the pool")
        elif key == "min_backends":
            if len(facts.get("backends", [])) < want:
                problems.append(f"reached {len(facts.get('backends', []))} backends")
        elif key == "min_backend_nodes":
            if len(facts.get("backend_nodes", [])) < want:
                problems.append(f"backends on {len(facts.get('backend_nodes', []))} nodes")
        elif key == "source":
            sources = facts.get("source_kinds", [])
            if not sources:
                problems.append("no source address observed")
            elif any(s != want for s in sources):
                problems.append(f"source addresses were {', '.join(sorted(set(sources)))}")
        elif key == "message":
            message = facts.get("message")
            if message is None:
                problems.append("the API server accepted it")
            elif not re.search(want, message):
                problems.append("rejected with another message")
        elif key == "backend_prefix":
            others = [b for b in facts.get("backends", []) if not b.startswith(want)]
            if others or not facts.get("backends"):
                problems.append(f"served by {', '.join(others) or 'nobody'}")
        elif key == "one_address_each":
            services, distinct = facts.get("lb_services", 0), len(set(facts.get("addresses", [])))
            if want and (services == 0 or distinct != services):
                problems.append(f"{services} LoadBalancer Services hold {distinct} distinct addresses")
            if not want and distinct:
                problems.append(f"{distinct} addresses were assigned")
        elif key == "flips_source":
            before, after = facts.get("before_source"), facts.get("after_source")
            if not before or not after:
                problems.append("no source address observed")
            elif (before != after) != want:
                problems.append(f"source stayed {before}" if want else f"source changed to {after}")
        elif key == "recovers_within":
            took = facts.get("failover_seconds")
            if took is None:
                problems.append("the address did not answer again")
            elif took > want:
                problems.append(f"took {took:.1f}s")
            if facts.get("holder_after") and facts.get("holder_after") == facts.get("holder_before"):
                problems.append("the same node still holds the address")
        elif key == "healthy_where_backends":
            wrong = [f"{node} answered {code}" for node, code in sorted(facts.get("codes", {}).items())
                     if (code == 200) != (node in facts.get("backend_nodes", []))]
            if not facts.get("codes"):
                problems.append("no node answered the health check")
            problems.extend(wrong)
        elif key == "resolves_to_cluster_ip":
            if (facts.get("value") is not None and facts.get("value") == facts.get("cluster_ip")) != want:
                problems.append(f"resolved to {facts.get('value')!r}, ClusterIP is {facts.get('cluster_ip')!r}")
        elif key == "pending":
            if bool(facts.get("pending")) != want:
                problems.append("an address was assigned" if want else "no address was assigned")
        else:
            raise UsageError(f"unknown expectation {key!r}")
    return problems


# ------------------------------------------------------------------ observing

def _field(obj: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            obj = obj[idx] if isinstance(obj, list) and len(obj) > idx else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj


def _service(ctx, name: str) -> dict[str, Any]:
    """The Service NAME in the lab's namespace, or NAMESPACE/NAME for a cluster component's
    (the Ingress controller's lives in its own namespace)."""
    namespace, _, name = name.rpartition("/")
    namespace = namespace or ctx.namespace
    try:
        svc = ctx.kube.core.read_namespaced_service(name, namespace)
    except ApiException as e:
        if e.status == 404:
            raise SvclabError(f"Service {namespace}/{name} does not exist") from None
        raise
    return ctx.kube.api.sanitize_for_serialization(svc)


def observe_service(ctx, spec: Mapping[str, Any]) -> Observation:
    svc = _service(ctx, spec["service"])
    value = _field(svc, spec["field"])
    facts: dict[str, Any] = {"value": value}
    if "in_pool" in spec.get("expect", {}):
        facts["in_pool"] = value in ctx.topology.pool if value else False
    return Observation(
        observed=f"{spec['field']} = {value if value is not None else '(not set)'}",
        evidence=[f"Service {ctx.namespace}/{spec['service']}: {spec['field']} = {json.dumps(value)}"],
        facts=facts,
    )


def external_ip(svc: dict[str, Any]) -> str | None:
    for ingress in _field(svc, "status.loadBalancer.ingress") or []:
        if ingress.get("ip"):
            return ingress["ip"]
    return None


# Warning events a load-balancer implementation leaves on a Service it cannot serve (MetalLB's
# allocator; the service controller that runs kube-vip's cloud provider).
LB_FAILURE_REASONS = ("AllocationFailed", "SyncLoadBalancerFailed")


def lb_allocation_failure(kube, namespace: str, name: str, since: str | None = None) -> str | None:
    """Why the Service NAMESPACE/NAME got no address, as its implementation said it in a Warning
    event (at or after SINCE, an ISO 8601 time: events of an earlier Service of that name do not
    count), or None."""
    since_time = datetime.datetime.fromisoformat(since) if since else None
    events = kube.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Service,involvedObject.name={name}").items
    for event in events:
        when = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
        if event.type == "Warning" and event.reason in LB_FAILURE_REASONS \
                and (since_time is None or (when and when >= since_time)):
            return f"{event.reason}: {event.message}"
    return None


def waitexternal_ip(ctx, name: str, timeout: float) -> str | None:
    """The Service's external address, waited for; an error as soon as the implementation says it
    cannot give one (an exhausted pool), rather than at the deadline."""
    def observe():
        svc = _service(ctx, name)
        meta, ip = svc["metadata"], external_ip(svc)
        failure = None if ip else lb_allocation_failure(ctx.kube, meta["namespace"], meta["name"],
                                                        since=meta.get("creationTimestamp"))
        return ip, failure, f"{meta['namespace']}/{meta['name']}"

    (ip, failure, ref), _ = poll(observe, lambda seen: bool(seen[0] or seen[1]), timeout=timeout)
    if failure:
        raise SvclabError(f"Service {ref} gets no load-balancer address: {failure}",
                          hint="free addresses (delete LoadBalancer Services) or raise pool_size")
    return ip


def http_targets(ctx, spec: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(label, host, port) for every address the probe sends to."""
    svc = _service(ctx, spec["service"])
    port_spec = (svc["spec"].get("ports") or [{}])[0]
    via = spec["via"]
    if via == "cluster-ip":
        return [("ClusterIP", svc["spec"]["clusterIP"], port_spec["port"])]
    if via == "dns":
        name = f"{spec['service']}.{ctx.namespace}.svc.cluster.local"
        return [(name, name, port_spec["port"])]
    if via == "node-port":
        node_port = port_spec.get("nodePort")
        if not node_port:
            raise SvclabError(f"Service {spec['service']} has no nodePort")
        which = spec.get("nodes", "all")
        nodes = [n for n in ctx.topology.nodes
                 if which == "all" or (which == "backend") == (n.name in set(ctx.topology.pod_nodes.values()))]
        return [(f"{n.name} {n.ip}:{node_port}", n.ip, node_port) for n in nodes]
    if via == "load-balancer":
        # Without an implementation no address will come: do not wait the full deadline for it.
        timeout = ctx.settings.wait_timeout if ctx.env.provider.expects_address else 3
        ip = waitexternal_ip(ctx, spec["service"], timeout)
        return [(f"load balancer {ip}", ip, port_spec["port"])] if ip else []
    raise UsageError(f"unknown http via {via!r}")


def outside_run(ctx, command: str, *, timeout: float) -> tuple[int, str]:
    """(exit status, output) of COMMAND run in the outside client (over the Docker API, see
    outside.py). Callers build COMMAND only from validated addresses, ports and host names."""
    return ctx.outside.run(command, timeout=timeout + 5)


_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_REQUEST = re.compile(r"^[a-z]*$")


def outside_dial(ctx, host: str, port: int, request: str, tries: int, *, host_header: str | None = None,
                 timeout: float | None = None) -> dict[str, list[str]]:
    """TRIES requests from the outside client to HOST:PORT/REQUEST (with a Host header for
    Ingress rules), each on a new connection; answered like agnhost's /dial."""
    if not _REQUEST.match(request) or (host_header is not None and not _HOSTNAME.match(host_header)):
        raise UsageError(f"invalid host {host_header!r} or request {request!r} in a probe")
    host, port = lab_address(ctx, host), int(port)  # validated: they go into a command line
    timeout = ctx.settings.probe_timeout if timeout is None else timeout
    headers = (f"Host: {host_header}",) if host_header else ()
    # Behind an Ingress controller an HTTP error (404: no rule for that host yet) is not the backend.
    script = dial_script(f"http://{host}:{port}/{request}", tries=tries, timeout=timeout, headers=headers,
                         http_errors_fail=bool(host_header))
    _, output = outside_run(ctx, script, timeout=tries * (timeout + 1))
    return parse_dial(output)


# kind's default Service and pod networks, which svclab's kind config keeps.
CLUSTER_NETWORKS = (ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("10.244.0.0/16"))


def lab_address(ctx, host: str, *, in_cluster: bool = False) -> str:
    """HOST, checked to be a lab address: an IPv4 address on svclab's docker network (nodes, the
    pool) or in the cluster's Service and pod networks (the outside client, which has no default
    route, tries those to show they are unreachable), or for the in-cluster client a cluster DNS
    name. Probes send traffic nowhere else; the result is safe to put into a command line."""
    if in_cluster and host.endswith(".svc.cluster.local") and _HOSTNAME.match(host):
        return host
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        raise SvclabError(f"refusing to probe {host!r}: not an IPv4 address") from None
    allowed = [ipaddress.ip_network(ctx.topology.pool.subnet), *CLUSTER_NETWORKS]
    if not any(ip in net for net in allowed):
        raise SvclabError(f"refusing to probe {ip}: outside svclab's networks ({', '.join(map(str, allowed))})")
    return str(ip)


def dial(ctx, source: str, host: str, port: int, request: str, tries: int) -> dict[str, list[str]]:
    host = lab_address(ctx, host, in_cluster=source != "outside")
    query = [("request", request), ("protocol", "http"), ("host", host), ("port", str(port)), ("tries", str(tries))]
    budget = tries * (ctx.settings.probe_timeout + 1) + 10
    if source == "outside":
        return outside_dial(ctx, host, port, request, tries)
    text = ctx.kube.get_json(f"/api/v1/namespaces/svclab-system/pods/{ctx.client_pod}:8080/proxy/dial",
                             query, timeout=budget)
    return json.loads(text)


def observe_http(ctx, spec: Mapping[str, Any]) -> Observation:
    source, tries = spec.get("from", "outside"), int(spec.get("tries", 1))
    request = spec.get("request", "hostname")
    targets = http_targets(ctx, spec)
    topo = ctx.topology
    client_ip = topo.client_ip if source == "outside" else topo.client_pod_ip
    evidence, backends, backend_nodes, source_kinds = [], set(), set(), []
    answered = silent = responses = errors = 0
    if not targets:
        evidence.append(f"Service {spec['service']} has no external address")
    elif spec["via"] == "load-balancer":
        reported = ctx.env.provider.holder(ctx.kube, ctx.namespace, spec["service"])
        if reported:
            evidence.append(f"{ctx.env.provider.name} reports the address held by node {reported}")
    for label, host, port in targets:
        if spec.get("host"):
            label += f" (Host: {spec['host']})"
            result = outside_dial(ctx, host, port, request, tries, host_header=spec["host"])
        else:
            result = dial(ctx, source, host, port, request, tries)
        got, errs = result.get("responses", []), result.get("errors", [])
        responses += len(got)
        errors += len(errs)
        answered += 1 if got else 0
        silent += 0 if got else 1
        seen = []
        for body in got:
            if request == "clientip":
                ip = body.rsplit(":", 1)[0]
                kind = topo.source_kind(ip, client_ip)
                source_kinds.append(kind)
                seen.append(f"{ip} ({kind if kind != 'node' else 'node ' + topo.node_owning(ip)})")
            else:
                backends.add(body)
                node = topo.pod_nodes.get(body)
                if node:
                    backend_nodes.add(node)
                seen.append(f"{body} on {node or '?'}")
        line = f"{source} → {label}: {len(got)}/{tries} answered"
        if spec["via"] == "load-balancer" and source == "outside" and got and (node := arp_holder(ctx, host)):
            line += f" via node {node} (the client's ARP entry)"
        if seen:
            line += "; saw " + ", ".join(sorted(set(seen)))
        if errs:
            line += f"; error: {errs[0][:120]}"
        evidence.append(line)
    facts = {"targets": len(targets), "answered_targets": answered, "silent_targets": silent,
             "responses": responses, "errors": errors, "backends": sorted(backends),
             "backend_nodes": sorted(backend_nodes), "source_kinds": source_kinds}
    if request == "clientip" and source_kinds:
        observed = f"source seen by backend: {', '.join(sorted(set(source_kinds)))}"
    elif not targets:
        observed = "no external address"
    elif responses:
        observed = f"{answered}/{len(targets)} answered, {len(backends)} backends on {len(backend_nodes)} nodes" \
            if request == "hostname" else f"{answered}/{len(targets)} answered"
    else:
        observed = f"none of {len(targets)} answered"
    return Observation(observed, evidence, facts)


def observe_dns(ctx, spec: Mapping[str, Any]) -> Observation:
    svc = _service(ctx, spec["service"])
    name = f"{spec['service']}.{ctx.namespace}.svc.cluster.local"
    text = ctx.kube.get_json(f"/api/v1/namespaces/svclab-system/pods/{ctx.client_pod}:8080/proxy/shell",
                             [("cmd", f"getent hosts {name}")], timeout=ctx.settings.probe_timeout + 10)
    output = json.loads(text).get("output", "")
    resolved = output.split()[0] if output.split() else None
    cluster_ip = svc["spec"].get("clusterIP")
    return Observation(
        observed=f"{name} → {resolved or 'nothing'}",
        evidence=[f"pod {ctx.client_pod}: getent hosts {name} → {output.strip() or '(no answer)'}",
                  f"Service ClusterIP: {cluster_ip}"],
        facts={"value": resolved, "cluster_ip": cluster_ip},
    )


def observe_health_check(ctx, spec: Mapping[str, Any]) -> Observation:
    """What a cloud load balancer's health check would see: kube-proxy answers on every node's
    healthCheckNodePort, 200 with the local endpoint count where the Service has a pod, else 503."""
    svc = _service(ctx, spec["service"])
    port = svc["spec"].get("healthCheckNodePort")
    if not port:
        raise SvclabError(f"Service {spec['service']} has no healthCheckNodePort (is its policy Local?)")
    port = int(port)
    backend_nodes = sorted(set(ctx.topology.pod_nodes.values()))
    codes, evidence = _health_codes(ctx, port)
    healthy = sorted(n for n, c in codes.items() if c == 200)
    return Observation(f"200 on {', '.join(healthy) or 'no node'}", evidence,
                       {"codes": codes, "backend_nodes": backend_nodes})


def _health_codes(ctx, port: int) -> tuple[dict[str, int], list[str]]:
    codes, evidence = {}, []
    for node in ctx.topology.nodes:
        ip = lab_address(ctx, node.ip)  # validated: it goes into a command line
        cmd = f"curl -s -m {int(ctx.settings.probe_timeout)} -w '\\n%{{http_code}}' http://{ip}:{port}/"
        _, output = outside_run(ctx, cmd, timeout=ctx.settings.probe_timeout)
        body, _, code = output.rpartition("\n")
        codes[node.name] = int(code) if code.strip().isdigit() else 0
        try:
            local = json.loads(body).get("localEndpoints")
        except ValueError:
            local = None
        evidence.append(f"{node.name} {ip}:{port} → HTTP {codes[node.name] or 'no answer'}"
                        + (f", localEndpoints={local}" if local is not None else ""))
    return codes, evidence


def observe_addresses(ctx, spec: Mapping[str, Any]) -> Observation:
    services = {svc.metadata.name: ctx.kube.api.sanitize_for_serialization(svc)
                for svc in ctx.kube.core.list_namespaced_service(ctx.namespace).items
                if svc.spec.type == "LoadBalancer"}
    # Cluster components the lab relies on (the Ingress controller's Service), as NAMESPACE/NAME.
    services.update({ref: _service(ctx, ref) for ref in spec.get("include", [])})
    evidence, addresses, by_service, ingress_addresses = [], [], {}, []
    for name, svc in sorted(services.items()):
        ip = external_ip(svc)
        by_service[name] = ip
        if ip:
            addresses.append(ip)
        evidence.append(f"Service {name}: {ip or '<pending>'}")
    from kubernetes import client

    for ing in client.NetworkingV1Api(ctx.kube.api).list_namespaced_ingress(ctx.namespace).items:
        ing = ctx.kube.api.sanitize_for_serialization(ing)
        hosts = [r.get("host", "*") for r in ing["spec"].get("rules", [])]
        ingress_addresses.append(external_ip(ing))
        evidence.append(f"Ingress {ing['metadata']['name']} ({', '.join(hosts)}): {external_ip(ing) or '<pending>'}"
                        " — every host behind one address")
    distinct = len(set(addresses))
    return Observation(f"{len(services)} LoadBalancer Services, {distinct} distinct addresses", evidence,
                       {"lb_services": len(services), "addresses": addresses, "by_service": by_service,
                        "ingress_addresses": ingress_addresses})


def observe_policy_flip(ctx, spec: Mapping[str, Any]) -> Observation:
    name = spec["service"]
    target = {"service": name, "via": "node-port", "nodes": "backend"}

    def source_kind() -> tuple[str | None, str, str | None]:
        label, host, port = http_targets(ctx, target)[0]
        got = dial(ctx, "outside", host, port, "clientip", 1).get("responses", [])
        if not got:
            return None, f"{label}: no answer", None
        ip = got[0].rsplit(":", 1)[0]
        kind = ctx.topology.source_kind(ip, ctx.topology.client_ip)
        return kind, f"{label}: backend saw {ip} ({kind})", ip

    policy = _service(ctx, name)["spec"]["externalTrafficPolicy"]
    flipped = "Local" if policy == "Cluster" else "Cluster"
    before, seen_before, before_ip = source_kind()
    evidence = [f"externalTrafficPolicy={policy}: {seen_before}"]
    patch = lambda value: ctx.kube.core.patch_namespaced_service(  # noqa: E731
        name, ctx.namespace, {"spec": {"externalTrafficPolicy": value}})
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


def observe_rejects(ctx, spec: Mapping[str, Any]) -> Observation:
    """Really creates the objects: a dry run skips the port allocator, which is where nodePort
    range and uniqueness are enforced. Anything the API server accepts is deleted at once."""
    objects = load_manifests(ctx.render(spec["manifest"]))
    try:
        ctx.kube.apply(objects, namespace=ctx.namespace)
    except Exception as e:  # ApiException, or the dynamic client's wrapper of it
        status = getattr(e, "status", None)
        if status in (400, 403, 409, 422):
            message = api_error_message(e)
            return Observation(f"rejected ({status})", [f"API server: {message}"], {"message": message})
        raise
    ctx.kube.delete(objects, namespace=ctx.namespace)
    return Observation("accepted", [f"the API server accepted {spec['manifest']} (deleted again)"], {"message": None})


def observe_pending(ctx, spec: Mapping[str, Any]) -> Observation:
    name, within = spec["service"], float(spec.get("within", 10))
    svc = _service(ctx, name)
    ip = external_ip(svc)
    started = time.monotonic()
    if not ip:
        w = watch.Watch()
        for event in w.stream(ctx.kube.core.list_namespaced_service, ctx.namespace,
                              field_selector=f"metadata.name={name}", timeout_seconds=max(1, int(within))):
            ip = external_ip(ctx.kube.api.sanitize_for_serialization(event["object"]))
            if ip or time.monotonic() - started >= within:
                w.stop()
                break
    waited = time.monotonic() - started
    lb_class = _field(svc, "spec.loadBalancerClass")
    evidence = [f"Service {ctx.namespace}/{name} type={_field(svc, 'spec.type')}"
                + (f" loadBalancerClass={lb_class}" if lb_class else "")]
    if ip:
        evidence.append(f"EXTERNAL-IP {ip} after {waited:.1f}s")
        return Observation(f"got {ip}", evidence, {"pending": False, "value": ip})
    evidence.append(f"EXTERNAL-IP <pending> for {waited:.0f}s of watching")
    return Observation("<pending>", evidence, {"pending": True})


# Cuts a node off its network, both IP and ARP, while leaving its configuration alone.
ISOLATE_NODE = """
table inet svclab_failover {
  chain ingress { type filter hook prerouting priority -400; policy accept; iifname "eth0" drop; }
  chain forward { type filter hook forward priority -400; policy accept; oifname "eth0" drop; }
  chain egress { type filter hook output priority -400; policy accept; oifname "eth0" drop; }
}
table arp svclab_failover {
  chain input { type filter hook input priority 0; policy drop; }
  chain output { type filter hook output priority 0; policy drop; }
}
"""
RECONNECT_NODE = "delete table inet svclab_failover\ndelete table arp svclab_failover\n"


def arp_holder(ctx, ip: str) -> str | None:
    """The node whose MAC address the outside client's ARP table holds for IP: who really
    answers for a load-balancer address on the wire."""
    from .network import docker_client

    ip = str(ipaddress.IPv4Address(ip))  # validated: it goes into a command line
    _, out = outside_run(ctx, f"ip neigh show {ip}", timeout=5)
    match = re.search(r"lladdr ([0-9a-f:]{17})", out)
    if not match:
        return None
    dc = docker_client()
    for node in ctx.topology.nodes:
        networks = dc.containers.get(node.name).attrs["NetworkSettings"]["Networks"]
        if any(n.get("MacAddress") == match.group(1) for n in networks.values()):
            return node.name
    return None


def _outside_get(ctx, ip: str, port: int, path: str, timeout: float) -> str | None:
    """One quick HTTP GET from the outside client: its answer, or None."""
    got = outside_dial(ctx, ip, port, path, 1, timeout=timeout).get("responses")
    return got[0] if got else None


def observe_failover(ctx, spec: Mapping[str, Any]) -> Observation:
    """Fails the node that holds the address the way a machine dies: its network is cut (IP and
    ARP) and its processes frozen (docker pause). Then times how long the address takes to answer
    again, and brings the node back as it was."""
    from .network import docker_client

    name, within = spec["service"], float(spec.get("within", 120))
    timeout = ctx.settings.wait_timeout if ctx.env.provider.expects_address else 3
    ip = waitexternal_ip(ctx, name, timeout)
    if not ip:
        return Observation("no external address", [f"Service {name} has no external address"], {})
    provider, kube = ctx.env.provider, ctx.kube
    port = int(_service(ctx, name)["spec"]["ports"][0]["port"])
    _outside_get(ctx, ip, port, "hostname", 3)
    holder = arp_holder(ctx, ip)
    if not holder:
        raise SvclabError(f"could not tell which node answers for {ip}")
    container = docker_client().containers.get(holder)  # kind names node containers after nodes
    if container.labels.get("io.x-k8s.kind.cluster") != ctx.settings.cluster_name:
        raise SvclabError(f"container {holder} is not a node of cluster {ctx.settings.cluster_name}; not touching it")
    evidence = [f"{ip} answered via node {holder} (the client's ARP entry)"]
    if reported := provider.holder(kube, ctx.namespace, name):
        evidence.append(f"{provider.name} reports the address held by node {reported}")
    result = container.exec_run(["sh", "-c", f"printf '%s' '{ISOLATE_NODE.strip()}' | nft -f -"])
    if result.exit_code != 0:
        raise SvclabError(f"could not cut {holder} off the network: {result.output.decode().strip()[:200]}")
    container.pause()
    evidence.append(f"cut {holder} off the network and froze it")
    took = after = None
    attempts = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < within:
            attempts += 1
            if _outside_get(ctx, ip, port, "hostname", 1):
                took = time.monotonic() - started
                break
        if took is not None:
            after = arp_holder(ctx, ip)
    finally:
        container.unpause()
        container.exec_run(["sh", "-c", f"printf '{RECONNECT_NODE}' | nft -f -"])
        evidence.append(f"restored {holder}")
    kube.wait_nodes_ready(len(ctx.topology.nodes), timeout=ctx.settings.wait_timeout)
    if took is None:
        evidence.append(f"{ip} did not answer within {within:.0f}s ({attempts} attempts)")
        return Observation("no answer after failover", evidence, {"holder_before": holder})
    evidence.append(f"{ip} answered again after {took:.1f}s ({attempts} attempts), now held by {after or '?'}")
    return Observation(f"failover in {took:.1f}s: {holder} → {after or '?'}", evidence,
                       {"failover_seconds": round(took, 2), "holder_before": holder, "holder_after": after})


OBSERVERS: dict[str, Callable[[Any, Mapping[str, Any]], Observation]] = {
    "service": observe_service,
    "http": observe_http,
    "dns": observe_dns,
    "addresses": observe_addresses,
    "policy-flip": observe_policy_flip,
    "health-check": observe_health_check,
    "rejects": observe_rejects,
    "pending": observe_pending,
    "failover": observe_failover,
}


def observe(ctx, spec: Mapping[str, Any]) -> Observation:
    return OBSERVERS[spec["kind"]](ctx, spec)
