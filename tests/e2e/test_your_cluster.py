"""The labs on clusters svclab did not make: made here by plain `kind create cluster` (kube-proxy
in nftables mode), MetalLB installed by the test itself from its pinned upstream manifest, and
one cluster without kube-proxy. svclab must detect what each has, expect what follows from it, skip what cannot
apply with its reason, clean up, and leave every object outside its namespaces as it found it."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import svclab
from .leaks import kind_binary

PLAIN = "svclab-e2e-plain"
NO_PROXY = "svclab-e2e-noproxy"


class PlainKind:
    """A kind cluster made without svclab, on a docker network of this test's own."""

    def __init__(self, name: str, folder: Path, *, workers: int, kube_proxy_mode: str | None = None):
        self.name, self.kubeconfig, self.network = name, folder / f"{name}.kubeconfig", f"{name}-net"
        self.env = {**os.environ, "KIND_EXPERIMENTAL_DOCKER_NETWORK": self.network}
        config = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                  "nodes": [{"role": "control-plane"}] + [{"role": "worker"}] * workers}
        if kube_proxy_mode:
            config["networking"] = {"kubeProxyMode": kube_proxy_mode}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
        self.config = folder / f"{name}.yaml"
        self.waits = kube_proxy_mode != "none"

    def create(self) -> None:
        subprocess.run(["docker", "network", "create", self.network], check=True, capture_output=True)
        image = os.environ.get("SVCLAB_NODE_IMAGE")
        proc = subprocess.run([kind_binary(), "create", "cluster", "--name", self.name, "--config", str(self.config),
                               "--kubeconfig", str(self.kubeconfig),
                               # without kube-proxy the nodes never get Ready: nothing to wait for
                               *(["--wait", "120s"] if self.waits else []),
                               *(["--image", image] if image else [])],
                              capture_output=True, text=True, timeout=600, env=self.env)
        assert proc.returncode == 0, proc.stderr

    def delete(self) -> None:
        subprocess.run([kind_binary(), "delete", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig)],
                       capture_output=True, timeout=300, env=self.env)
        subprocess.run(["docker", "network", "rm", self.network], capture_output=True)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                              capture_output=True, text=True, timeout=300)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    def subnet(self) -> ipaddress.IPv4Network:
        out = subprocess.run(["docker", "network", "inspect", self.network, "--format",
                              "{{range .IPAM.Config}}{{.Subnet}} {{end}}"], capture_output=True, text=True, check=True)
        return next(n for n in map(ipaddress.ip_network, out.stdout.split()) if n.version == 4)

    def install_metallb(self) -> str:
        """MetalLB from its pinned manifest (checked against its sha256), an L2 pool at the top
        of the network; returns the pool's range."""
        from svclab import render
        from svclab.config import load_settings, pins
        from svclab.kube import load_manifests
        from svclab.mirror import fetch

        settings, pin = load_settings(), pins()["metallb"]
        text = fetch(pin["manifest_url"], pin["manifest_sha256"], cache_dir=settings.cache_dir, mirror=settings.mirror)
        objects = render.patch(load_manifests(text.decode()), "pull-if-not-present")
        self.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(objects))
        # MetalLB's controller makes this secret itself once it runs: whichever comes first stays.
        made = self.kubectl("-n", "metallb-system", "create", "secret", "generic", "memberlist",
                            "--from-literal=secretkey=" + os.urandom(16).hex(), check=False)
        assert made.returncode == 0 or "already exists" in made.stderr, made.stderr
        self.kubectl("-n", "metallb-system", "rollout", "status", "deployment/controller", "--timeout=240s")
        top = self.subnet().broadcast_address
        first, last = top - 30, top - 1
        pool = [{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                 "metadata": {"name": "plain", "namespace": "metallb-system"}, "spec": {"addresses": [f"{first}-{last}"]}},
                {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                 "metadata": {"name": "plain", "namespace": "metallb-system"}}]
        deadline = time.monotonic() + 120
        while True:   # the webhook answers a few seconds after the controller is ready
            proc = self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(pool), check=False)
            if proc.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert proc.returncode == 0, proc.stderr
        self.kubectl("-n", "metallb-system", "rollout", "status", "daemonset/speaker", "--timeout=240s")
        return f"{first}-{last}"

    def has_metallb(self) -> bool:
        """Whether MetalLB with the pool of install_metallb is there (a failed install may have left
        MetalLB without its pool)."""
        return self.kubectl("-n", "metallb-system", "get", "ipaddresspool", "plain", check=False).returncode == 0

    def namespaces(self) -> list[str]:
        return sorted(self.kubectl("get", "namespaces", "-o", "name").stdout.split())


def lab_all(cluster: PlainKind, folder: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = folder / "results.json"
    proc = svclab("lab.all", "--kubeconfig", str(cluster.kubeconfig), "--json", str(out), "--junit",
                  str(folder / "results.xml"), *extra, check=False)
    assert out.exists(), f"no JSON written\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(out.read_text())


def checked(proc, data) -> dict:
    failed = [r for r in data["results"] if not r["passed"]]
    assert proc.returncode == 0 and not failed, json.dumps(failed, indent=2) + proc.stdout[-3000:] + proc.stderr
    return {f"{r['lab']}/{r['probe']}": r for r in data["results"]}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    # kube-proxy in nftables mode, not svclab's default (iptables): what svclab detects and expects
    # follows the cluster, not its own habits.
    cluster = PlainKind(PLAIN, folder, workers=2, kube_proxy_mode="nftables")
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.delete()


def test_a_plain_kind_cluster_without_a_load_balancer(plain, tmp_path):
    before = plain.namespaces()
    proc, data = lab_all(plain, tmp_path)
    results = checked(proc, data)
    detected = data["target"]["detected"]
    assert detected["load_balancer"] == "none" and detected["kube_proxy_mode"] == "nftables", detected
    assert "mode nftables" in proc.stderr, proc.stderr[-2000:]   # the detected mode, reported with the steps
    assert data["provider"] == "none"
    # Nothing implements LoadBalancer here: the Service stays pending, and that is what was expected.
    assert results["loadbalancer/stays-pending-without-implementation"]["observed"] == "<pending>"
    safety = results["svclab/nothing-else-changed"]
    assert safety["passed"] and safety["facts"]["written"] == [] and safety["facts"]["gone"] == []
    assert sum(v for v in safety["facts"]["before"].values() if v > 0) > 50   # it counted something real
    skipped = {f"{s['lab']}/{s['probe']}": s["reason"] for s in data["skipped"]}
    assert any("stops or cuts off nodes" in r for r in skipped.values()), skipped
    # The host-network clients work here; only the loopback probe hangs on settings svclab cannot read.
    assert "localhostNodePorts" in skipped["host-network/loopback-node-port"], skipped
    for probe in ("node-reaches-cluster-ip", "outside-nothing-on-far-nodes", "every-node-own-node-port-answers"):
        assert results[f"host-network/{probe}"]["passed"], probe
    assert 'skipped="' in (tmp_path / "results.xml").read_text()
    assert "skipped" in proc.stdout and "stops or cuts off nodes" in proc.stdout
    # Cleaned up: the namespaces are as they were, svclab's outside client is gone, no node labelled.
    assert plain.namespaces() == before
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=svclab.io/cluster=target-kind-{PLAIN}"],
                          capture_output=True, text=True).stdout.split()
    assert left == []
    assert "svclab.io" not in plain.kubectl("get", "nodes", "--show-labels").stdout
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "svclab" / "clusters"
    assert not (state / f"target-kind-{PLAIN}").exists() and not (state / f"target-kind-{PLAIN}.lock").exists()


WRONG = """title: "Wrong on purpose: a Service expected that no manifest makes"
claims: [C90]
manifests: [echo-spread.yaml]
deployments: [echo]
probes:
  - id: expects-node-port
    claim: C90
    kind: service
    service: echo
    field: spec.type
    expect: {equals: NodePort}
"""


def test_a_lab_that_differs_leaves_diagnostics_taken_before_the_clean_up(plain, tmp_path):
    root = tmp_path / "labs"
    (root / "wrong").mkdir(parents=True)
    (root / "wrong" / "lab.yaml").write_text(WRONG)
    (root / "claims.yaml").write_text("C90: this lab is wrong on purpose.\n")
    before = plain.namespaces()
    proc = svclab("--labs", str(root), "lab.wrong", "--kubeconfig", str(plain.kubeconfig),
                  "--diagnostics", str(tmp_path), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (folder,) = tmp_path.glob("svclab-diagnostics-*")
    # The lab's namespace as it was when its probe differed (its four echo pods; the lab makes no
    # Service, which is why the probe differed), and no kind logs: svclab made no kind here.
    pods = json.loads((folder / "svclab-wrong" / "pods.json").read_text())["items"]
    assert len(pods) == 4 and all(p["metadata"]["name"].startswith("echo-") for p in pods), pods
    assert json.loads((folder / "detected.json").read_text())["kube_proxy_mode"] == "nftables"
    assert len(json.loads((folder / "nodes.json").read_text())["items"]) == 3
    assert not (folder / "kind-logs").exists()
    assert plain.namespaces() == before


def test_metallb_installed_for_one_run_and_taken_away(plain, tmp_path):
    """--install metallb where nothing implements LoadBalancer: a pool carved from the nodes'
    docker network, the load-balancer probes expect addresses from it, and afterwards MetalLB is
    gone (namespace, CRDs, RBAC, webhook) and the census says nothing else changed."""
    before = plain.namespaces()
    proc, data = lab_all(plain, tmp_path, "--install", "metallb", "--test", "loadbalancer,traffic-policy")
    results = checked(proc, data)
    assert data["target"]["detected"]["load_balancer"] == "none" and data["provider"] == "metallb"
    (line,) = [x for x in proc.stderr.splitlines() if "--install metallb" in x]
    first, last = (ipaddress.ip_address(a) for a in line.split("pool ")[1].split(" ")[0].split("-"))
    assert ipaddress.ip_address(first) in plain.subnet(), line
    ip = ipaddress.ip_address(results["loadbalancer/external-address"]["facts"]["value"])
    assert first <= ip <= last, (ip, line)
    assert results["loadbalancer/port-80-at-external-address"]["passed"]
    assert results["traffic-policy/local-policy-lb-keeps-client"]["passed"]
    assert results["svclab/nothing-else-changed"]["passed"]
    assert plain.namespaces() == before
    crds = plain.kubectl("get", "crd", "-o", "name").stdout
    assert "metallb.io" not in crds, crds
    for kind, name in (("clusterrole", "metallb-system:controller"), ("clusterrolebinding", "metallb-system:speaker"),
                       ("validatingwebhookconfiguration", "metallb-webhook-configuration")):
        assert "NotFound" in plain.kubectl("get", kind, name, check=False).stderr, (kind, name)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "svclab" / "clusters"
    assert not (state / f"target-kind-{PLAIN}").exists()   # its pool.json went with it


def test_the_same_cluster_with_metallb_installed_by_hand(plain, tmp_path):
    pool = plain.install_metallb()
    # svclab installs MetalLB only where nothing implements LoadBalancer yet: one line, nothing made.
    refused = svclab("lab.loadbalancer", "--kubeconfig", str(plain.kubeconfig), "--install", "metallb", check=False)
    assert refused.returncode == 3 and "this cluster already has MetalLB" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    proc, data = lab_all(plain, tmp_path, "--install", "traefik")
    results = checked(proc, data)
    # svclab's Traefik, asked for by name, served the Ingress probes, and went with the labs.
    for probe in ("ingress/host-a-reaches-shop-a", "ingress/one-address-per-loadbalancer", "tls/ingress-terminates"):
        assert results[probe]["passed"], probe
    assert not any("svclab-traefik" in s["reason"] for s in data["skipped"]), data["skipped"]
    for kind, name in (("ingressclass", "svclab-traefik"), ("clusterrole", "svclab-ingress-traefik"),
                       ("clusterrolebinding", "svclab-ingress-traefik"), ("namespace", "svclab-traefik")):
        assert "NotFound" in plain.kubectl("get", kind, name, check=False).stderr, (kind, name)
    detected = data["target"]["detected"]
    assert detected["load_balancer"] == "metallb", detected
    assert data["provider"] == "metallb"
    ip = results["loadbalancer/external-address"]["facts"]["value"]
    first, last = (ipaddress.ip_address(a) for a in pool.split("-"))
    assert first <= ipaddress.ip_address(ip) <= last
    assert results["loadbalancer/port-80-at-external-address"]["passed"]
    assert results["svclab/nothing-else-changed"]["passed"]
    # cluster.down on this cluster removes svclab's namespaces (none left now) and nothing else.
    before = plain.namespaces()
    down = svclab("cluster.down", "--kubeconfig", str(plain.kubeconfig))
    assert plain.namespaces() == before and "metallb-system" in " ".join(before), down.stdout


def test_this_machine_as_the_outside_client(plain, tmp_path):
    """--outside this-machine: svclab's own process sends the outside requests, plain HTTP to the
    nodes and to the lab's load-balancer addresses (here on the test's own docker network), and
    starts no client container. The source a backend sees under Local is this machine's address on
    the route to the nodes: the network's gateway."""
    if not plain.has_metallb():
        plain.install_metallb()
    proc, data = lab_all(plain, tmp_path, "--outside", "this-machine",
                         "--test", "clusterip,nodeport,loadbalancer,traffic-policy,tcp-udp")
    results = checked(proc, data)
    assert data["target"]["outside_client"] == "this machine" and data["target"]["unreachable_nodes"] == [], data["target"]
    assert "it reaches every node" in proc.stderr, proc.stderr[-2000:]
    gateway = subprocess.run(["docker", "network", "inspect", plain.network, "--format",
                              "{{range .IPAM.Config}}{{.Gateway}} {{end}}"], capture_output=True, text=True).stdout.split()
    client_ip = data["topology"]["traffic-policy"]["client_ip"]
    assert client_ip in gateway, (client_ip, gateway)
    for probe in ("local-policy-keeps-client", "local-policy-lb-keeps-client", "health-check-per-node",
                  "cluster-policy-hides-client"):
        assert results[f"traffic-policy/{probe}"]["passed"], probe
    local = results["traffic-policy/local-policy-keeps-client"]
    assert local["facts"]["source_kinds"] and set(local["facts"]["source_kinds"]) == {"client"}, local
    assert results["nodeport/every-node"]["facts"]["answered_targets"] == 3
    assert results["loadbalancer/port-80-at-external-address"]["passed"]
    skipped = {f"{s['lab']}/{s['probe']}": s["reason"] for s in data["skipped"]}
    assert any("ClusterIP from outside the cluster" in r for k, r in skipped.items() if k.startswith("clusterip/")), skipped
    assert any("shell tools" in r for k, r in skipped.items() if k.startswith("tcp-udp/")), skipped
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=svclab.io/cluster=target-kind-{PLAIN}"],
                          capture_output=True, text=True).stdout.split()
    assert left == []
    assert results["svclab/nothing-else-changed"]["passed"]


def test_a_container_of_yours_as_the_outside_client(plain, tmp_path):
    """--outside container:NAME: the user's own running container on the nodes' network sends the
    outside requests (the backend under Local sees its address); one that is missing or stopped
    is refused in one line with nothing made, and svclab leaves the container as it was."""
    from svclab.config import agnhost_image

    name = "e2e-toolbox-plain"
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "svclab" / "clusters"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    try:
        missing = svclab("lab.nodeport", "--kubeconfig", str(plain.kubeconfig), "--outside", f"container:{name}",
                         check=False)
        assert missing.returncode == 3 and f"there is no container {name}" in missing.stderr, missing.stderr
        assert "Traceback" not in missing.stderr and not (state / f"target-kind-{PLAIN}").exists()
        subprocess.run(["docker", "create", "--name", name, "--network", plain.network, agnhost_image(), "pause"],
                       check=True, capture_output=True)
        stopped = svclab("lab.nodeport", "--kubeconfig", str(plain.kubeconfig), "--outside", f"container:{name}",
                         check=False)
        assert stopped.returncode == 3 and f"container {name} is created, not running" in stopped.stderr, stopped.stderr
        assert f"docker start {name}" in stopped.stderr
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        address = subprocess.run(["docker", "inspect", name, "--format",
                                  f'{{{{(index .NetworkSettings.Networks "{plain.network}").IPAddress}}}}'],
                                 capture_output=True, text=True, check=True).stdout.strip()
        proc, data = lab_all(plain, tmp_path, "--outside", f"container:{name}",
                             "--test", "clusterip,nodeport,traffic-policy/local-policy-keeps-client")
        results = checked(proc, data)
        assert data["target"]["outside_client"] == "container" and data["target"]["outside_container"] == name
        # Docker gave it a default route: nothing is sent from it to the cluster's own addresses.
        assert data["target"]["outside_routes_beyond"] is True
        skipped = {f"{s['lab']}/{s['probe']}": s["reason"] for s in data["skipped"]}
        assert "has a default route" in skipped["clusterip/outside-to-cluster-ip"], skipped
        assert results["clusterip/pod-to-cluster-ip"]["passed"]
        assert f"your container {name} at {address}" in proc.stderr, proc.stderr[-2000:]
        local = results["traffic-policy/local-policy-keeps-client"]
        assert data["topology"]["traffic-policy"]["client_ip"] == address, data["topology"]["traffic-policy"]
        assert set(local["facts"]["source_kinds"]) == {"client"}, local
        assert results["nodeport/every-node"]["facts"]["answered_targets"] == 3
        assert results["svclab/nothing-else-changed"]["passed"]
        # Left as it was: still running, and no container of svclab's beside it.
        status = subprocess.run(["docker", "inspect", name, "--format", "{{.State.Status}}"],
                                capture_output=True, text=True).stdout.strip()
        assert status == "running"
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=svclab.io/cluster=target-kind-{PLAIN}"],
                              capture_output=True, text=True).stdout.split()
        assert left == []
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_refusals_on_a_cluster_svclab_did_not_make(plain, tmp_path):
    wrong = svclab("lab.clusterip", "--kubeconfig", str(plain.kubeconfig), "--context", "nope", check=False)
    assert wrong.returncode == 2 and "has no context 'nope'" in wrong.stderr and "Traceback" not in wrong.stderr
    up = svclab("cluster.up", check=False, env={"SVCLAB_KUBECONFIG": str(plain.kubeconfig)})
    assert up.returncode == 2 and "is already up" in up.stderr
    # A kubeconfig whose server does not answer: one line, exit 3, nothing made.
    dead = tmp_path / "dead.kubeconfig"
    config = yaml.safe_load(plain.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead.write_text(yaml.safe_dump(config))
    proc = svclab("lab.clusterip", "--kubeconfig", str(dead), check=False)
    assert proc.returncode == 3 and "cannot reach the cluster of context" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "svclab" / "clusters"
    assert not (state / f"target-kind-{PLAIN}").exists()   # refused: nothing of svclab's stays


def test_a_cluster_without_kube_proxy_says_so_once_and_skips(tmp_path):
    cluster = PlainKind(NO_PROXY, tmp_path, workers=0, kube_proxy_mode="none")
    try:
        cluster.create()
        proc, data = lab_all(cluster, tmp_path, "--test", "clusterip,nodeport,loadbalancer")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert data["target"]["detected"]["kube_proxy_mode"] == "none"
        reasons = {s["reason"] for s in data["skipped"]}
        assert len(reasons) == 1 and reasons.pop().startswith("nothing translates Services"), data["skipped"]
        assert {s["lab"] for s in data["skipped"]} == {"clusterip", "nodeport", "loadbalancer"}
        assert proc.stdout.count("nothing translates Services") == 1
        assert [r["probe"] for r in data["results"]] == ["nothing-else-changed"]
    finally:
        cluster.delete()


def test_rules_read_in_the_kube_proxy_pods_of_a_cluster_svclab_did_not_make(plain, tmp_path):
    """lab.rules on a target reads each node's rules inside its kube-proxy pod (nftables here), and
    leaves no state folder behind."""
    proc = svclab("lab.rules", "--kubeconfig", str(plain.kubeconfig), "--service", "default/kubernetes")
    assert proc.stdout.startswith("Service default/kubernetes: type ClusterIP"), proc.stdout
    nodes = [line for line in proc.stdout.splitlines() if line.startswith("== node ")]
    assert nodes == [f"== node {PLAIN}-{role} (kube-proxy nftables)" for role in ("control-plane", "worker", "worker2")]
    assert proc.stdout.count("default/kubernetes") >= 4, proc.stdout   # its chains on every node
    one = svclab("lab.rules", "--kubeconfig", str(plain.kubeconfig), "--service", "default/kubernetes",
                 "--node", f"{PLAIN}-worker")
    assert [line for line in one.stdout.splitlines() if line.startswith("== node ")] == \
        [f"== node {PLAIN}-worker (kube-proxy nftables)"]
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "svclab" / "clusters"
    assert not (state / f"target-kind-{PLAIN}").exists()
