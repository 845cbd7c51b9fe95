"""This machine as the outside client (svclab.this_machine): what it may send, where, and what the
plan skips because of it. The HTTP tests use a real server on loopback."""

from __future__ import annotations

import http.server
import socket
import threading
import types

import pytest

from svclab import labs, plan, target
from svclab.config import load_settings
from svclab.errors import PrerequisiteError, SvclabError, UsageError
from svclab.probes.base import NodeInfo, Topology
from svclab.probes.traffic import outside_dial, outside_status, this_machine_address
from svclab.this_machine import Reach, ThisMachine, reach

from .test_target import FOUND, kubeconfig


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        body = f"{self.path[1:]} host={self.headers.get('Host')} close={self.headers.get('Connection')}".encode()
        self.send_response(503 if self.path == "/sick" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ctx_with(client, services=()):
    nodes = [NodeInfo("n1", "127.0.0.1", None, True), NodeInfo("n2", "127.0.0.2", None, False)]
    kube = types.SimpleNamespace(list=lambda api, kind, namespace=None, **kw: list(services))
    return types.SimpleNamespace(outside=client, kube=kube, namespace="svclab-lab",
                                 settings=types.SimpleNamespace(probe_timeout=2.0),
                                 topology=Topology(nodes, {}, client_ip="127.0.0.1", client_pod_ip="10.244.1.2"))


def lb_service(ip):
    return {"metadata": {"name": "echo", "namespace": "svclab-lab"}, "spec": {},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


def test_requests_go_to_the_node_each_on_a_new_connection_past_any_proxy(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")   # a proxy that would refuse
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    ctx = ctx_with(ThisMachine("127.0.0.1"))
    got = outside_dial(ctx, "127.0.0.1", server, "hostname", 3, host_header="shop-a.example")
    assert got == {"responses": ["hostname host=shop-a.example close=close"] * 3, "errors": []}


def test_http_errors_and_refusals_are_failed_tries_with_the_reason(server):
    ctx = ctx_with(ThisMachine("127.0.0.1"))
    behind_ingress = ctx.outside.dial(f"http://127.0.0.1:{server}/missing", tries=1, timeout=2,
                                      headers=("Host: a.example",), http_errors_fail=True)
    assert behind_ingress == {"responses": [], "errors": [f"http://127.0.0.1:{server}/missing: HTTP 404"]}
    port = closed_port()
    refused = outside_dial(ctx, "127.0.0.1", port, "hostname", 2)
    assert refused == {"responses": [], "errors": [f"http://127.0.0.1:{port}/hostname: connection refused"] * 2}


def test_the_health_check_answer_is_read_from_this_machine(server):
    ctx = ctx_with(ThisMachine("127.0.0.1"))
    assert outside_status(ctx, "127.0.0.1", server, timeout=2)[0] == 200
    assert outside_status(ctx, "127.0.0.1", closed_port(), timeout=2) == (0, "connection refused")


def test_only_node_and_the_labs_load_balancer_addresses_may_be_sent_to():
    ctx = ctx_with(ThisMachine("127.0.0.1"), services=[lb_service("192.0.2.10"), {"spec": {"clusterIP": "10.96.0.9"}}])
    assert this_machine_address(ctx, "127.0.0.2") == "127.0.0.2"
    assert this_machine_address(ctx, "192.0.2.10") == "192.0.2.10"
    for other in ("10.96.0.9", "192.0.2.11", "8.8.8.8"):
        with pytest.raises(SvclabError, match="neither a node's address nor a load-balancer address"):
            this_machine_address(ctx, other)
    with pytest.raises(SvclabError, match="not an IPv4 address"):
        this_machine_address(ctx, "example.com")
    with pytest.raises(SvclabError, match="runs no shell command"):
        ctx.outside.run("ip neigh", timeout=1)


def test_reach_names_the_nodes_it_cannot_connect_to_and_the_source_it_sends_from():
    answers = {"10.0.0.1": ("10.0.0.99", None), "10.0.0.2": (None, "timed out")}
    found = reach(list(answers), connect=lambda ip, port, timeout: answers[ip])
    assert found == Reach({"10.0.0.2": "timed out"}, "10.0.0.99")
    assert "cannot reach 10.0.0.2 (timed out)" in found.lines()[0]
    assert reach(["127.0.0.1"], port=closed_port()).unreachable == {"127.0.0.1": "connection refused"}
    assert reach(["127.0.0.1"], port=closed_port()).source == "127.0.0.1"   # the route's source, nothing sent


def here(unreachable=()):
    return types.SimpleNamespace(outside_routes_beyond=False, detected=FOUND, outside="this machine", installs=(), unreachable=tuple(unreachable))


def test_from_this_machine_only_http_to_nodes_and_load_balancers_runs():
    chosen = [labs.load_lab(i) for i in ("clusterip", "loadbalancer", "traffic-policy", "tcp-udp")]
    runnable, skipped = plan.plan(chosen, here())
    reasons = {f"{s.lab}/{s.probe}": s.reason for s in skipped}
    ran = {f"{lab.id}/{p.id}": p for lab in runnable for p in lab.probes}
    assert any("ClusterIP from outside the cluster" in r for k, r in reasons.items() if k.startswith("clusterip/"))
    assert all("shell tools" in r for k, r in reasons.items() if k.startswith("tcp-udp/") and "traefik" not in r)
    assert not any(k.startswith(("loadbalancer/", "traffic-policy/")) for k in reasons), reasons
    assert any(p.kind == "health-check" for p in ran.values())
    assert any(getattr(p, "via", None) == "node-port" for p in ran.values())


def test_where_this_machine_cannot_reach_the_nodes_only_their_probes_skip():
    chosen = [labs.load_lab("traffic-policy"), labs.load_lab("loadbalancer")]
    runnable, skipped = plan.plan(chosen, here(["172.31.0.5: timed out"]))
    node_bound = {s.probe for s in skipped}
    assert skipped and all("which this machine cannot reach (172.31.0.5: timed out" in s.reason for s in skipped)
    kept = [p for lab in runnable for p in lab.probes]
    assert all(getattr(p, "via", None) != "node-port" and p.kind != "health-check" for p in kept)
    assert any(getattr(p, "via", None) == "load-balancer" for p in kept) and node_bound


def test_no_outside_client_skips_what_sends_from_outside():
    runnable, skipped = plan.plan([labs.load_lab("nodeport")],
                                  types.SimpleNamespace(outside_routes_beyond=False, detected=FOUND, outside="", installs=()))
    assert skipped and all("no outside client here (--outside none)" in s.reason for s in skipped)


def test_the_outside_setting_and_what_it_picks(tmp_path):
    assert target.outside_kind("auto", True) == "container"
    assert target.outside_kind("auto", False) == "this machine"
    assert target.outside_kind("this-machine", True) == "this machine"
    assert target.outside_kind("none", True) == ""
    with pytest.raises(PrerequisiteError, match="--outside container needs the nodes to be containers"):
        target.outside_kind("container", False)
    with pytest.raises(UsageError, match="unknown outside client 'laptop'"):
        load_settings({"outside": "laptop"}, env={})
    with pytest.raises(UsageError, match="--outside is for a cluster svclab did not make"):
        target.resolve(load_settings({"outside": "this-machine"}, env={}))
    chosen = target.resolve(load_settings({"kubeconfig": str(kubeconfig(tmp_path))}, env={"SVCLAB_OUTSIDE": "none"}))
    assert chosen.outside == "none"


def hostname_ctx(services):
    ctx = ctx_with(ThisMachine("127.0.0.1"), services=services)
    ctx.topology = Topology([NodeInfo("n1", "127.0.0.2", None, True)], {}, client_ip="127.0.0.1", client_pod_ip="10.244.1.2")
    by_name = {s["metadata"]["name"]: s for s in services}
    ctx.kube.get = lambda api, kind, name, namespace=None: by_name.get(name)
    ctx.settings.wait_timeout = 5
    ctx.env = types.SimpleNamespace(provider=types.SimpleNamespace(expects_address=True))
    return ctx


def named_lb(name, hostname, port):
    return {"metadata": {"name": name, "namespace": "svclab-lab", "creationTimestamp": "2026-12-03T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": port}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}}


def test_a_load_balancer_host_name_is_resolved_here_and_only_its_addresses_are_sent_to(server):
    from svclab.probes.kinds import http

    ctx = hostname_ctx([named_lb("echo", "localhost", server)])
    spec = http.Spec.model_validate({"id": "lb", "claim": "C1", "path": "p", "kind": "http", "service": "echo",
                                     "via": "load-balancer", "expect": {"answers": True}})
    assert http.targets(ctx, spec) == [("load balancer localhost (127.0.0.1)", "127.0.0.1", server)]
    assert ctx.outside.resolved == {"localhost": ["127.0.0.1"]}
    assert outside_dial(ctx, "127.0.0.1", server, "hostname", 1)["responses"] == ["hostname host=127.0.0.1:%d close=close" % server]
    with pytest.raises(SvclabError, match="neither a node's address"):
        outside_dial(ctx, "127.0.0.3", server, "hostname", 1)
    ctx.outside = object()   # svclab's container client: it cannot resolve a cloud's name
    with pytest.raises(SvclabError, match="only this machine can resolve"):
        http.targets(ctx, spec)


def test_a_name_that_does_not_resolve_is_one_line():
    def refuse(*args):
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(SvclabError, match=r"^a1b2c3.elb.example does not resolve on this machine \(name or service not known\)$"):
        ThisMachine("127.0.0.1", getaddrinfo=refuse).resolve("a1b2c3.elb.example")


def test_a_proxied_load_balancer_skips_the_source_checks_through_its_address():
    proxied = types.SimpleNamespace(translates_services=True, kube_proxy_detail="kube-proxy, iptables", proxied=True)
    runnable, skipped = plan.plan([labs.load_lab("traffic-policy")],
                                  types.SimpleNamespace(outside_routes_beyond=False, detected=proxied, outside="container", installs=()))
    assert {s.probe for s in skipped} == {"cluster-policy-lb-hides-client", "local-policy-lb-keeps-client"}
    assert all("ipMode Proxy" in s.reason for s in skipped)
    assert any(p.id == "local-policy-keeps-client" for lab in runnable for p in lab.probes)
