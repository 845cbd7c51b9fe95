"""What probes share for reaching the lab: reading its Services, waiting for an external address,
and sending requests from the two clients, only ever to lab addresses.

Clients: ``pod`` is the in-cluster client pod, agnhost netexec reached through the API server's
pod proxy (whose /dial endpoint makes the requests); ``outside`` is the client container on the
cluster's docker network, commanded over the Docker API (outside.py: curl from a shell; it has no
default route and publishes no port, so it can reach nothing beyond that network and nobody
without Docker's authority can command it). The echo backends answer /hostname and /clientip.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from collections.abc import Sequence
from typing import Any

from ..errors import SvclabError, UsageError
from ..kube import poll
from ..outside import dial_script, parse_dial
from ..this_machine import ThisMachine
from .base import HOST_NAME

__all__ = ["field", "service", "node_port", "external_ip", "external_hostname", "lb_allocation_failure",
           "wait_external_ip", "outside_run", "outside_dial", "outside_get", "outside_status", "is_this_machine", "this_machine_address", "lab_address",
           "dial", "netexec_port", "lab_client", "arp_holder", "CLUSTER_NETWORKS", "CLIENT_LABEL"]

# Pods of a lab that make requests rather than answer them (a client pinned to a node): labelled
# so, and found by their app.kubernetes.io/name.
CLIENT_LABEL = "svclab.io/client"


def field(obj: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            obj = obj[idx] if isinstance(obj, list) and len(obj) > idx else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj


def service(ctx, name: str) -> dict[str, Any]:
    """The Service NAME in the lab's namespace, or NAMESPACE/NAME for a cluster component's
    (the Ingress controller's lives in its own namespace)."""
    namespace, _, name = name.rpartition("/")
    namespace = namespace or ctx.namespace
    svc = ctx.kube.get("v1", "Service", name, namespace)
    if svc is None:
        raise SvclabError(f"Service {namespace}/{name} does not exist")
    return svc


def node_port(ctx, name: str, *, for_what: str) -> tuple[dict[str, Any], int]:
    """The Service NAME and its first port's nodePort; an error saying FOR_WHAT needs one if it has none."""
    svc = service(ctx, name)
    ports = svc["spec"].get("ports") or []
    if not ports or not ports[0].get("nodePort"):
        raise SvclabError(f"Service {name} has no nodePort for {for_what}")
    return svc, int(ports[0]["nodePort"])


def external_ip(svc: dict[str, Any]) -> str | None:
    for ingress in field(svc, "status.loadBalancer.ingress") or []:
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
    events = kube.list("v1", "Event", namespace,
                       field_selector=f"involvedObject.kind=Service,involvedObject.name={name}")
    return allocation_failure(events, since)


def allocation_failure(events: list[dict[str, Any]], since: str | None = None) -> str | None:
    """The first Warning among EVENTS (the API's JSON) that says a load balancer was refused,
    at or after SINCE (ISO 8601), as 'Reason: message'."""
    since_time = _time(since) if since else None
    for event in events:
        when = _time(event.get("lastTimestamp") or event.get("eventTime")
                     or (event.get("metadata") or {}).get("creationTimestamp"))
        if event.get("type") == "Warning" and event.get("reason") in LB_FAILURE_REASONS \
                and (since_time is None or (when is not None and when >= since_time)):
            return f"{event['reason']}: {event.get('message', '')}"
    return None


def _time(text: str | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def external_hostname(svc: dict[str, Any]) -> str | None:
    for ingress in field(svc, "status.loadBalancer.ingress") or []:
        if ingress.get("hostname"):
            return ingress["hostname"]
    return None


def wait_external_ip(ctx, name: str, timeout: float, *, hostnames: bool = False) -> str | None:
    """The Service's external address, waited for (HOSTNAMES: a host name counts, where the
    implementation gives one instead of an IP); an error as soon as the implementation says it
    cannot give one (an exhausted pool), rather than at the deadline."""
    def observe():
        svc = service(ctx, name)
        meta, ip = svc["metadata"], external_ip(svc) or (external_hostname(svc) if hostnames else None)
        failure = None if ip else lb_allocation_failure(ctx.kube, meta["namespace"], meta["name"],
                                                        since=meta.get("creationTimestamp"))
        return ip, failure, f"{meta['namespace']}/{meta['name']}"

    (ip, failure, ref), _ = poll(observe, lambda seen: bool(seen[0] or seen[1]), timeout=timeout)
    if failure:
        raise SvclabError(f"Service {ref} gets no load-balancer address: {failure}",
                          hint="free addresses (delete LoadBalancer Services) or raise pool_size")
    return ip


def outside_run(ctx, command: str, *, timeout: float, client=None) -> tuple[int, str]:
    """(exit status, output) of COMMAND run in the outside client, or in CLIENT (another
    outside.OutsideClient of svclab's), over the Docker API (see outside.py). Callers build
    COMMAND only from validated addresses, ports and host names."""
    return (client or ctx.outside).run(command, timeout=timeout + 5)


_HOSTNAME = re.compile(HOST_NAME)
_REQUEST = re.compile(r"^[a-z]*$")


def outside_dial(ctx, host: str, port: int, request: str, tries: int, *, host_header: str | None = None,
                 timeout: float | None = None, also: Sequence[str] = (), client=None) -> dict[str, list[str]]:
    """TRIES requests from the outside client (or CLIENT, see outside_run) to HOST:PORT/REQUEST
    (with a Host header for Ingress rules), each on a new connection; answered like agnhost's
    /dial. ALSO: more subnets of svclab's own the address may be in (see lab_address)."""
    if not _REQUEST.match(request) or (host_header is not None and not _HOSTNAME.match(host_header)):
        raise UsageError(f"invalid host {host_header!r} or request {request!r} in a probe")
    sender = client or ctx.outside
    host = this_machine_address(ctx, host) if is_this_machine(sender) else lab_address(ctx, host, also=also)
    port = int(port)  # validated, with the host: they go into a command line
    timeout = ctx.settings.probe_timeout if timeout is None else timeout
    headers = (f"Host: {host_header}",) if host_header else ()
    url = f"http://{host}:{port}/{request}"
    # Behind an Ingress controller an HTTP error (404: no rule for that host yet) is not the backend.
    if is_this_machine(sender):
        return sender.dial(url, tries=tries, timeout=timeout, headers=headers, http_errors_fail=bool(host_header))
    script = dial_script(url, tries=tries, timeout=timeout, headers=headers, http_errors_fail=bool(host_header))
    _, output = outside_run(ctx, script, timeout=tries * (timeout + 1), client=client)
    return parse_dial(output)


def outside_status(ctx, ip: str, port: int, *, timeout: float) -> tuple[int, str]:
    """(HTTP status, body) of one GET of http://IP:PORT/ from the outside client; status 0: no answer."""
    if is_this_machine(ctx.outside):
        return ctx.outside.status(f"http://{this_machine_address(ctx, ip)}:{int(port)}/", timeout=timeout)
    ip = lab_address(ctx, ip)  # validated: it goes into a command line
    _, output = outside_run(ctx, f"curl -s -m {int(timeout)} -w '\\n%{{http_code}}' http://{ip}:{int(port)}/",
                            timeout=timeout)
    body, _, code = output.rpartition("\n")
    return (int(code) if code.strip().isdigit() else 0), body


def is_this_machine(client) -> bool:
    """Whether CLIENT is this machine itself (this_machine.ThisMachine), not a container of svclab's."""
    return isinstance(client, ThisMachine)


def this_machine_address(ctx, host: str) -> str:
    """HOST, checked to be one this machine may send to as the outside client: a node's address,
    or a load-balancer address the cluster gave a Service in the lab's namespace (or in the
    namespace of the Ingress controller svclab installed). Nothing else, and never a ClusterIP
    or a pod: this machine has routes beyond the cluster."""
    from ..ingress import NAMESPACE as INGRESS_NAMESPACE

    try:
        ip = str(ipaddress.IPv4Address(host))
    except ValueError:
        raise SvclabError(f"refusing to probe {host!r}: not an IPv4 address") from None
    if any(ip == node.ip for node in ctx.topology.nodes):
        return ip
    services = [svc for namespace in (ctx.namespace, INGRESS_NAMESPACE) for svc in ctx.kube.list("v1", "Service", namespace)]
    given = {external_ip(svc) for svc in services}
    given |= {a for svc in services for a in ctx.outside.resolved.get(external_hostname(svc) or "", [])}
    if ip not in given:
        raise SvclabError(f"refusing to probe {ip} from this machine: neither a node's address nor a load-balancer "
                          f"address of the lab's Services")
    return ip


# kind's default Service and pod networks, which svclab's kind config keeps.
CLUSTER_NETWORKS = (ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("10.244.0.0/16"))


def lab_address(ctx, host: str, *, in_cluster: bool = False, also: Sequence[str] = (),
                loopback: bool = False) -> str:
    """HOST, checked to be a lab address: an IPv4 address on svclab's docker network (nodes, the
    pool), in the cluster's Service and pod networks (the outside client, which has no default
    route, tries those to show they are unreachable) or in ALSO (subnets of docker networks svclab
    made beside the cluster), or for the in-cluster client a cluster DNS name; with LOOPBACK (a
    client in a node's own network namespace), also 127.0.0.1, that node itself. Probes send
    traffic nowhere else; the result is safe to put into a command line."""
    if in_cluster and host.endswith(".svc.cluster.local") and _HOSTNAME.match(host):
        return host
    if loopback and host == "127.0.0.1":
        return host
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        raise SvclabError(f"refusing to probe {host!r}: not an IPv4 address") from None
    # An outside client with a default route (a user's container) could send those out by it.
    contained = in_cluster or not getattr(ctx.outside, "routes_beyond", False)
    allowed = [ipaddress.ip_network(ctx.topology.pool.subnet), *(CLUSTER_NETWORKS if contained else ()),
               *(ipaddress.ip_network(net) for net in also)]
    if not any(ip in net for net in allowed):
        raise SvclabError(f"refusing to probe {ip}: outside svclab's networks ({', '.join(map(str, allowed))})")
    return str(ip)


def dial(ctx, source: str, host: str, port: int, request: str, tries: int,
         client: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """TRIES requests to HOST:PORT/REQUEST from the outside client, or from a pod: CLIENT (the
    API's Pod, one of the lab's clients), by default svclab's in-cluster client."""
    host_network = bool(client and client["spec"].get("hostNetwork"))
    host = lab_address(ctx, host, in_cluster=source != "outside", loopback=host_network)
    query = [("request", request), ("protocol", "http"), ("host", host), ("port", str(port)), ("tries", str(tries))]
    budget = tries * (ctx.settings.probe_timeout + 1) + 10
    if source == "outside":
        return outside_dial(ctx, host, port, request, tries)
    namespace, pod, netexec = ("svclab-system", ctx.client_pod, 8080) if client is None else \
        (client["metadata"]["namespace"], client["metadata"]["name"], netexec_port(client))
    text = ctx.kube.get_json(f"/api/v1/namespaces/{namespace}/pods/{pod}:{netexec}/proxy/dial", query, timeout=budget)
    return json.loads(text)


def netexec_port(pod: dict[str, Any]) -> int:
    """The port agnhost netexec listens on in POD: its first declared containerPort (a client in
    the node's network picks one no node process uses), else netexec's 8080."""
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return int(port["containerPort"])
    return 8080


def lab_client(ctx, name: str) -> dict[str, Any]:
    """The running pod of the lab's client NAME (labelled CLIENT_LABEL, app.kubernetes.io/name NAME)."""
    return lab_clients(ctx, name)[0]


def lab_clients(ctx, name: str) -> list[dict[str, Any]]:
    """Every running pod of the lab's client NAME (a DaemonSet's: one per node), by node name."""
    pods = [p for p in ctx.kube.list("v1", "Pod", ctx.namespace,
                                     label_selector=f"{CLIENT_LABEL}=true,app.kubernetes.io/name={name}")
            if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("podIP")]
    if not pods:
        raise SvclabError(f"the lab's client {name} has no running pod in {ctx.namespace}",
                          hint=f"a client is a Deployment or DaemonSet whose pods are labelled {CLIENT_LABEL}: \"true\" "
                               f"and app.kubernetes.io/name: {name}")
    return sorted(pods, key=lambda p: (p["spec"].get("nodeName") or "", p["metadata"]["name"]))

def arp_holder(ctx, ip: str) -> str | None:
    """The node whose MAC address the outside client's ARP table holds for IP: who really
    answers for a load-balancer address on the wire."""
    from ..network import docker_client

    if is_this_machine(ctx.outside):
        return None   # svclab reads no ARP table of this machine's
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


def outside_get(ctx, ip: str, port: int, path: str, timeout: float, *, also: Sequence[str] = ()) -> str | None:
    """One quick HTTP GET from the outside client: its answer, or None."""
    got = outside_dial(ctx, ip, port, path, 1, timeout=timeout, also=also).get("responses")
    return got[0] if got else None


