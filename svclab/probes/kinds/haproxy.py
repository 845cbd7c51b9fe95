"""haproxy: your own load balancer in front of every node's nodePort. svclab configures an HAProxy
container beside the cluster from the Service (its nodePort on every node, health checks on
kube-proxy's health port under policy Cluster or on the Service's healthCheckNodePort under Local),
reads HAProxy's own view of the nodes (its stats) and sends requests through its one address;
optionally it cuts a node off and times how soon HAProxy marks it down, counting the requests that
failed meanwhile."""

from __future__ import annotations

import csv
import io
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from ...errors import SvclabError
from ...kube import poll
from ..base import NAME, CutOffSpec, Expectation, Observation, Prediction, Topology, answer_count_problems
from ..outage import cut_off, spare_node
from ..traffic import external_ip, lab_address, node_port, outside_dial, outside_run

OWN_CLUSTER = "runs HAProxy beside svclab's own nodes and cuts one off"   # why it runs only on a kind cluster svclab made
USES_OUTSIDE = True   # sends from the outside client

EXAMPLE = """
- id: haproxy-in-front
  claim: C25
  path: "outside client → HAProxy → every node's nodePort"
  kind: haproxy
  service: shop-cluster
  expect: {up: all, answers: true}
"""

FRONTEND_PORT = 8080      # where clients send their requests
TLS_PORT = 8443           # the same, over TLS terminated by HAProxy (tls lab)
STATS_PORT = 8404         # HAProxy's stats page (CSV at /stats;csv)
KUBE_PROXY_HEALTH = 10256  # kube-proxy's own health server on every node (policy Cluster)
CHECK_INTERVAL_MS = 1000
CHECK_FALL = 2            # failed checks in a row that mark a node down
CHECK_RISE = 2


class Expect(Expectation):
    up: Literal["all", "backends"] | None = Field(
        None, description="Which nodes HAProxy's health checks keep UP: all, or only those running a backend pod.")
    answers: bool | None = Field(None, description="Every request through HAProxy's address answered.")
    marked_down_within: float | None = Field(
        None, gt=0, description="cut_off: seconds within which HAProxy marks the cut-off node DOWN.")
    failures_at_most: int | None = Field(
        None, ge=0, description="cut_off: requests through HAProxy that may fail while it notices.")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "up": lambda: "every node UP" if value == "all" else "UP only where a backend runs",
            "answers": lambda: "answers through HAProxy" if value else "no answer through HAProxy",
            "marked_down_within": lambda: f"cut node DOWN within {value:g}s",
            "failures_at_most": lambda: f"≤{value} failed requests meanwhile",
        }[key]()

    @property
    def settles(self) -> bool:
        return self.marked_down_within is None and self.failures_at_most is None and self.answers is not False

    def prediction(self) -> Prediction | None:
        if self.up:
            return Prediction(("every node", "only the pod's node"), "every node" if self.up == "all" else "only the pod's node")
        if self.failures_at_most == 0:
            return Prediction(("no request fails", "some requests fail"), "no request fails")
        return None


class Spec(CutOffSpec[Expect]):
    """Configures HAProxy for SERVICE, reads its stats, sends TRIES requests through it; with CUT_OFF,
    cuts off a worker without a backend pod and sends requests through HAProxy one after another
    (at least 100 ms apart) until HAProxy marks it DOWN (at most WITHIN seconds), then restores it."""

    CUT_OFF_KEYS: ClassVar[tuple[str, ...]] = ("marked_down_within", "failures_at_most")

    kind: Literal["haproxy"]
    service: str = Field(pattern=NAME, description="A Service in the lab's namespace with a nodePort.")
    tries: int = Field(12, ge=1, le=100, description="Requests sent through HAProxy.")
    within: float = Field(20, gt=0, le=120, description="cut_off: seconds to wait for HAProxy to mark it DOWN.")


def haproxy_config(servers: list[tuple[str, str]], node_port: int, check_port: int, check_path: str, *,
                   tls_certs: str | None = None) -> str:
    """HAProxy's configuration: one frontend, one backend of SERVERS ((node, address) pairs) on
    NODE_PORT, each checked with GET CHECK_PATH on CHECK_PORT, and the stats page. With TLS_CERTS
    (a folder of PEM files, certificate and key, chosen by the SNI the client sends) the frontend
    terminates TLS on TLS_PORT and tells the backend with X-Forwarded-Proto."""
    lines = [
        "global",
        "  maxconn 256",
        "defaults",
        "  mode http",
        "  timeout connect 500ms",
        "  timeout client 5s",
        "  timeout server 5s",
        "  timeout check 500ms",
        # A connection refused or timed out is retried on another node, not handed to the client.
        "  retries 2",
        "  option redispatch 1",
        "  option forwardfor",
        "frontend service",
        f"  bind :{FRONTEND_PORT}" if tls_certs is None else f"  bind :{TLS_PORT} ssl crt {tls_certs}",
        *([] if tls_certs is None else ["  http-request set-header X-Forwarded-Proto https"]),
        "  default_backend nodes",
        "backend nodes",
        "  balance roundrobin",
        f"  option httpchk GET {check_path}",
        "  http-check expect status 200",
    ]
    lines += [f"  server {node} {ip}:{node_port} check port {check_port} inter {CHECK_INTERVAL_MS}ms "
              f"fall {CHECK_FALL} rise {CHECK_RISE}" for node, ip in servers]
    lines += ["listen stats", f"  bind :{STATS_PORT}", "  stats enable", "  stats uri /stats", ""]
    return "\n".join(lines)


def parse_stats(text: str) -> dict[str, dict[str, str]]:
    """HAProxy's stats CSV: the backend's servers by name, each with its status ('UP', 'DOWN',
    'UP 1/2' while going down...), last check and total sessions."""
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {row["svname"]: {"status": row.get("status", ""),
                            "check": " ".join(filter(None, (row.get("check_status"), row.get("check_code")))),
                            "sessions": row.get("stot", "0")}
            for row in rows if row.get("pxname") == "nodes" and row.get("svname") not in ("BACKEND", "FRONTEND")}


def settled(servers: dict[str, dict[str, str]]) -> bool:
    """Every server checked at least once and in a plain UP or DOWN state (not on its way)."""
    return bool(servers) and all(s["status"] in ("UP", "DOWN") and s["check"] for s in servers.values())


def _stats(ctx, address: str) -> dict[str, dict[str, str]]:
    code, out = outside_run(ctx, f"curl -s -m 2 'http://{address}:{STATS_PORT}/stats;csv'", timeout=3)
    return parse_stats(out) if code == 0 else {}


def observe(ctx, spec: Spec) -> Observation:
    from ... import site
    from ...network import docker_client

    svc, port = node_port(ctx, spec.service, for_what="HAProxy to send to")
    local = svc["spec"].get("externalTrafficPolicy") == "Local"
    if local:
        check_port, check_path = svc["spec"].get("healthCheckNodePort"), "/"
        if not check_port:
            raise SvclabError(f"Service {spec.service} has policy Local but no healthCheckNodePort",
                              hint="only a Service of type LoadBalancer gets one: give it a loadBalancerClass "
                                   "no implementation serves, so that HAProxy is its load balancer")
        check = f"the Service's healthCheckNodePort {check_port} (policy Local)"
    else:
        check_port, check_path = KUBE_PROXY_HEALTH, "/healthz"
        check = f"kube-proxy's health port {KUBE_PROXY_HEALTH} (policy Cluster)"
    servers = [(n.name, lab_address(ctx, n.ip)) for n in ctx.topology.nodes]
    # One load balancer per Service, as a site would run it.
    machine = site.Machine(role=f"haproxy-{ctx.lab.id}-{spec.service}", image=site.haproxy_image(), user="65534:65534",
                           argv=("haproxy", "-db", "-f", "/etc/svclab/haproxy.cfg"),
                           files=(("/etc/svclab/haproxy.cfg",
                                   haproxy_config(servers, port, int(check_port), check_path)),))
    address = lab_address(ctx, site.ensure(docker_client(), cluster=ctx.settings.cluster_name,
                                           network=ctx.settings.network, machine=machine))
    stats, _ = poll(lambda: _stats(ctx, address), settled, timeout=ctx.settings.wait_timeout / 4, interval=0.25)
    evidence = [f"HAProxy at {address}:{FRONTEND_PORT} → nodePort {port} on {len(servers)} nodes, "
                f"checked on {check} every {CHECK_INTERVAL_MS} ms"]
    if svc["spec"].get("type") == "LoadBalancer":
        evidence.append(f"{spec.service}: type LoadBalancer, class {svc['spec'].get('loadBalancerClass') or 'default'}, "
                        f"EXTERNAL-IP {external_ip(svc) or '<pending>'} in the cluster")
    evidence += [f"HAProxy stats: {node} {s['status']} ({s['check'] or 'not checked'})" for node, s in sorted(stats.items())]
    got = outside_dial(ctx, address, FRONTEND_PORT, "hostname", spec.tries)
    answered = len(got.get("responses") or [])
    after = _stats(ctx, address)
    sessions = {node: int(after.get(node, {}).get("sessions") or 0) - int(s.get("sessions") or 0)
                for node, s in stats.items()}
    evidence.append(f"{answered}/{spec.tries} requests through HAProxy answered, by pods "
                    f"{', '.join(sorted(set(got.get('responses') or []))) or 'none'}; sent to nodes: "
                    + ", ".join(f"{n} {c}" for n, c in sorted(sessions.items())))
    facts: dict[str, Any] = {"address": address, "check": check, "status": {n: s["status"] for n, s in stats.items()},
                             "tries": spec.tries, "answered": answered, "sessions": sessions,
                             "backend_nodes": ctx.topology.backend_nodes}
    if spec.cut_off:
        facts.update(_cut_off_one(ctx, spec, address, evidence))
    up = sorted(n for n, s in facts["status"].items() if s == "UP")
    summary = f"UP: {', '.join(up) or 'none'}; {answered}/{spec.tries} answered"
    if spec.cut_off:
        down = facts.get("marked_down_after")
        summary += (f"; {facts['cut_node']} DOWN after {down:.1f}s" if down is not None else
                    f"; {facts['cut_node']} never marked DOWN") + f", {facts['failed_during']} failed"
    return Observation(summary, evidence, facts)


def _cut_off_one(ctx, spec: Spec, address: str, evidence: list[str]) -> dict[str, Any]:
    node = spare_node(ctx)
    counts = {"sent": 0, "failed": 0}
    # Each: seconds after the cut, answered, the pod and its node, the cut node's status in HAProxy after it.
    attempts: list[dict[str, Any]] = []

    def one_round() -> str:
        counts["sent"] += 1
        got = outside_dial(ctx, address, FRONTEND_PORT, "hostname", 1, timeout=2).get("responses") or []
        if not got:
            counts["failed"] += 1
        status = _stats(ctx, address).get(node, {}).get("status", "")
        attempts.append({"at": round(time.monotonic() - started, 2), "answered": bool(got),
                         "pod": got[0] if got else None,
                         "node": ctx.topology.pod_nodes.get(got[0]) if got else None, "cut_status": status})
        return status

    # HAProxy keeps checking between probes: a node an earlier cut left DOWN must be UP again
    # first, or its DOWN after this cut would prove nothing.
    before, _ = poll(lambda: _stats(ctx, address).get(node, {}).get("status", ""), lambda s: s == "UP",
                     timeout=spec.within, interval=0.25)
    if before != "UP":
        raise SvclabError(f"HAProxy had {node} {before or 'not listed'}, not UP, for {spec.within:g}s before the cut")
    with cut_off(ctx, node):
        evidence.append(f"cut {node} off the network")
        started = time.monotonic()
        status, _ = poll(one_round, lambda s: s == "DOWN", timeout=spec.within, interval=0.1)
        down_after = time.monotonic() - started if status == "DOWN" else None
    evidence.append(f"HAProxy marked {node} DOWN after {down_after:.1f}s" if down_after is not None
                    else f"HAProxy did not mark {node} DOWN within {spec.within:g}s")
    evidence.append(f"while it noticed: {counts['sent']} requests through HAProxy, one after another, "
                    f"{counts['failed']} failed; restored {node}")
    return {"cut_node": node, "marked_down_after": None if down_after is None else round(down_after, 2),
            "sent_during": counts["sent"], "failed_during": counts["failed"], "attempts": attempts}


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    status = facts.get("status") or {}
    if expect.up is not None:
        backends = set(facts.get("backend_nodes", topology.backend_nodes if topology else []))
        if not status:
            problems.append("HAProxy reported no servers")
        for node, state in sorted(status.items()):
            want_up = expect.up == "all" or node in backends
            if (state == "UP") != want_up:
                problems.append(f"{node} is {state}")
    if expect.answers is not None:
        problems += answer_count_problems(expect.answers, facts.get("answered", 0), facts.get("tries", 0), "requests")
    if expect.marked_down_within is not None:
        down = facts.get("marked_down_after")
        if down is None:
            problems.append(f"{facts.get('cut_node', 'the cut node')} was never marked DOWN")
        elif down > expect.marked_down_within:
            problems.append(f"marked DOWN after {down:.1f}s")
    if expect.failures_at_most is not None and facts.get("failed_during", 0) > expect.failures_at_most:
        problems.append(f"{facts['failed_during']} of {facts.get('sent_during', '?')} requests failed")
    return problems
