"""Faults on a real MetalLB cluster of our own: a backend that never becomes ready, MetalLB's pods
deleted in the middle of a lab, a worker node stopped in the middle of a lab, and (only when asked
for, see `docker_restart`) the Docker daemon restarted. In every case svclab reports within its
deadlines, and `cluster.down` still removes everything.

Cluster names start with `svclab-e2e-flt-`, on a docker network of their own, with state in the
test's own $XDG_STATE_HOME (tests/e2e/leaks.py counts what is left).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from svclab.errors import EXIT_FAILURE, EXIT_MISMATCH, EXIT_OK
from svclab.kube import Kube

from .leaks import ROOT, LeakCounter, Run, Running, cli_env, diff, installed_copy, svclab

pytestmark = pytest.mark.e2e

PREFIX = "svclab-e2e-flt-"
NETWORK = PREFIX + "net"
NAME = PREFIX + "mlb"
WAIT = 60          # SVCLAB_WAIT_TIMEOUT of the runs under test: every wait gives up after this


class Cluster:
    def __init__(self, tmp: Path, name: str = NAME):
        self.tmp = tmp
        self.name = name
        self.counter = LeakCounter(PREFIX, tmp / "state")

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(self.counter.state_home, **{"SVCLAB_NETWORK": NETWORK, "SVCLAB_WAIT_TIMEOUT": str(WAIT),
                                                   **extra})

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 900) -> Run:
        return svclab(*args, env=self.env(), cwd=cwd or self.tmp, timeout=timeout)

    def kube(self) -> Kube:
        return Kube(self.counter.state_dir / "clusters" / self.name / "kubeconfig")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A MetalLB cluster with two workers (so that the load-balancer lab can pass when nothing
    disturbs it); `down` at the end must leave nothing."""
    c = Cluster(tmp_path_factory.mktemp("faults"))
    empty = c.counter.snapshot()
    try:
        up = svclab("cluster.up", "--name", NAME, "--provider", "metallb",
                    env=cli_env(c.counter.state_home, SVCLAB_NETWORK=NETWORK), cwd=c.tmp)
        assert up.returncode == 0, str(up)
        yield c
    finally:
        down = c.run("cluster.down", "--name", NAME)
        assert down.returncode == 0 and not down.errors, str(down)
        changes = diff(empty, c.counter.snapshot())
        assert not changes, "left behind:\n" + "\n".join(changes)


def _checkout_with_lab(tmp: Path, lab_id: str, deployment: str) -> Path:
    """A copy of the package, laid out as installed, with one more lab (the copy's command line
    sees it): one Deployment `echo` as DEPLOYMENT describes and its Service."""
    copy = tmp / f"installed-{lab_id}"
    lab = installed_copy(copy) / lab_id
    lab.mkdir()
    (lab / "lab.yaml").write_text(f"""title: "{lab_id}: a backend that never becomes ready"
claims: [C1]
manifests: [backend.yaml]
deployments: [echo]
probes:
  - id: default-type
    claim: C1
    path: Service applied without a type
    kind: service
    service: echo
    field: spec.type
    expect: {{equals: ClusterIP}}
""")
    (lab / "backend.yaml").write_text(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 1
  selector:
    matchLabels: {{app.kubernetes.io/name: echo}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
{deployment}
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: {{app.kubernetes.io/name: echo}}
  ports:
    - port: 80
      targetPort: 8080
""")
    return copy


def test_backend_image_that_does_not_exist(cluster):
    """The image cannot be pulled: svclab gives up early, naming the pod and the image."""
    copy = _checkout_with_lab(cluster.tmp, "noimage", """        - name: agnhost
          image: svclab.local/never-built:v0
          imagePullPolicy: IfNotPresent
""")
    run = cluster.run("lab.noimage", "--name", NAME, cwd=copy, timeout=WAIT * 4)
    assert run.returncode == EXIT_FAILURE, str(run)
    assert len(run.errors) == 1, str(run)
    line = run.errors[0]
    assert "deployment svclab-noimage/echo" in line and "svclab.local/never-built:v0" in line, line
    assert any(reason in line for reason in ("ErrImagePull", "ImagePullBackOff")), line
    assert run.seconds < WAIT + 60, f"took {run.seconds:.0f}s for a deadline of {WAIT}s"
    print(f"\nimage absent: reported in {run.seconds:.0f}s: {line}")


def test_backend_that_never_becomes_ready(cluster):
    """The pod runs but its readiness probe never passes: the wait ends at its deadline and says
    what it waited for."""
    copy = _checkout_with_lab(cluster.tmp, "unready", """        - name: agnhost
          image: ${AGNHOST_IMAGE}
          imagePullPolicy: IfNotPresent
          args: [netexec, --http-port=8080]
          readinessProbe:
            httpGet: {path: /healthz, port: 9999}
            periodSeconds: 2
""")
    run = cluster.run("lab.unready", "--name", NAME, cwd=copy, timeout=WAIT * 4)
    assert run.returncode == EXIT_FAILURE, str(run)
    assert len(run.errors) == 1, str(run)
    line = run.errors[0]
    assert f"timed out after {WAIT}s waiting for deployment svclab-unready/echo to be available" in line, line
    assert WAIT <= run.seconds < WAIT + 60, f"took {run.seconds:.0f}s for a deadline of {WAIT}s"
    print(f"\nnever ready: reported in {run.seconds:.0f}s: {line}")


def _lab_with_fault(cluster: Cluster, lab: str, fault) -> tuple[Run, dict]:
    """Runs LAB, calls FAULT once its step line appears, and returns the run and its JSON results."""
    out = cluster.tmp / f"{lab}-{fault.__name__}.json"
    running = Running(lab, "--name", NAME, "--json", str(out), env=cluster.env(), cwd=cluster.tmp)
    try:
        # one step line at a time: each call returns only the lines it read
        while not running.wait_for_steps(1, timeout=600)[-1].startswith(f"lab {lab.removeprefix('lab.')}:"):
            pass
        fault()
        run = running.finish(timeout=WAIT * 8)
    finally:
        if running.proc.poll() is None:
            running.signal(signal.SIGKILL)
    assert out.exists(), f"no results written\n{run}"
    return run, json.loads(out.read_text())


def test_metallb_pods_deleted_mid_lab(cluster):
    from kubernetes import client

    core = client.CoreV1Api(cluster.kube().api)   # deleting with no grace period: the typed client's option
    deleted = []

    def delete_metallb_pods():
        for pod in core.list_namespaced_pod("metallb-system").items:
            if pod.metadata.labels.get("component") in ("controller", "speaker"):
                core.delete_namespaced_pod(pod.metadata.name, "metallb-system", grace_period_seconds=0)
                deleted.append(pod.metadata.name)

    run, data = _lab_with_fault(cluster, "lab.loadbalancer", delete_metallb_pods)
    assert any("controller" in p for p in deleted) and any("speaker" in p for p in deleted), deleted
    assert run.returncode in (EXIT_OK, EXIT_MISMATCH), str(run)
    assert not run.errors or run.returncode == EXIT_MISMATCH, str(run)
    results = {r["probe"]: r for r in data["results"]}
    assert len(results) >= 7
    for r in results.values():
        assert r["observed"] and (r["passed"] or r["evidence"]), r
    # The controller came back and handed out an address from the pool.
    assert results["external-address"]["passed"], json.dumps(results["external-address"], indent=2)
    failed = [p for p, r in results.items() if not r["passed"]]
    print(f"\nMetalLB pods deleted mid-lab: exit {run.returncode} after {run.seconds:.0f}s, differed: {failed}")
    assert run.seconds < WAIT * 6


# ------------------------------------------------------------------ two commands, and a killed one
# (Before the tests below, which leave a worker stopped and a container frozen for the teardown.)

HOLD_LAB = """title: "Holds the cluster: one Service watched while it stays pending"
claims: [C12]
manifests: [echo-one-node.yaml, service.yaml]
deployments: [echo]
probes:
  - id: pending-a-while
    claim: C12
    kind: pending
    service: echo
    within: 40
    expect: {pending: true}
"""


def test_two_runs_on_one_cluster_take_turns_or_refuse(cluster):
    """A second svclab on the same cluster never runs beside the first: it refuses in one line
    when told not to wait, and otherwise waits its turn and passes."""
    # The first run holds the cluster for 40 s of watching a pending Service at least (a lab of the
    # test's own), and both others start together as soon as it has begun: neither can find the
    # cluster free, however loaded the machine.
    folder = cluster.tmp / "hold-labs" / "hold"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab.yaml").write_text(HOLD_LAB)
    (folder / "service.yaml").write_text((ROOT / "labs" / "pending" / "service.yaml").read_text())
    extra = ("--labs", str(folder.parent))
    first = Running(*extra, "lab.hold", "--name", NAME, env=cluster.env(), cwd=cluster.tmp)
    second = None
    try:
        first.wait_for_steps(1, timeout=120)
        second = Running(*extra, "lab.clusterip", "--name", NAME, env=cluster.env(), cwd=cluster.tmp)
        refused = svclab(*extra, "lab.clusterip", "--name", NAME, env=cluster.env(SVCLAB_LOCK_WAIT="0"), cwd=cluster.tmp)
        assert refused.returncode == EXIT_FAILURE, str(refused)
        assert len(refused.errors) == 1 and f"cluster {NAME} is busy: svclab (pid" in refused.errors[0], str(refused)
        assert "runs lab.hold" in refused.errors[0]
        assert first.proc.poll() is None, "the first run ended before the others asked: " + "".join(first.stderr)
        done = first.finish(timeout=600)
        waited = second.finish(timeout=600)
    finally:
        for running in (first, second):
            if running is not None and running.proc.poll() is None:
                running.signal(signal.SIGKILL)
    assert done.returncode == EXIT_OK, str(done)
    assert waited.returncode == EXIT_OK, str(waited)
    assert "is busy" in waited.stderr and "waiting up to" in waited.stderr, waited.stderr


def test_two_clusters_brought_up_at_once_get_disjoint_pools(tmp_path):
    """Two `cluster.up`s of different names on one docker network, started together: both
    succeed, and their load-balancer pools and client addresses do not overlap."""
    env = cli_env(tmp_path / "state", SVCLAB_NETWORK="svclab-e2e-twins")
    names = ["svclab-e2e-twin-a", "svclab-e2e-twin-b"]
    ups = [Running("cluster.up", "--name", name, "--workers", "0", "--provider", "none", "--ingress", "none",
                   env=env, cwd=tmp_path) for name in names]
    try:
        done = [up.finish(timeout=600) for up in ups]
        assert all(d.returncode == EXIT_OK for d in done), "\n".join(map(str, done))
        pools = [json.loads(svclab("cluster.status", "--name", name, "--json", env=env, cwd=tmp_path).stdout)
                 for name in names]
        spans = []
        for info in pools:
            first, last = info["pool"].split("-")
            spans.append({info["client_ip"], *_addresses(first, last)})
        assert spans[0] and spans[1] and not spans[0] & spans[1], pools
    finally:
        for up in ups:
            if up.proc.poll() is None:
                up.signal(signal.SIGKILL)
        for name in names:
            svclab("cluster.down", "--name", name, env=env, cwd=tmp_path)


def _addresses(first: str, last: str) -> set[str]:
    import ipaddress

    start, end = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    return {str(ipaddress.IPv4Address(i)) for i in range(start, end + 1)}


def test_a_run_killed_mid_lab_is_repaired_by_the_next_one(cluster):
    """kill -9 while a probe has the cluster changed (a Service's status written by the lab), with a
    node left frozen and cut off as a killed failover probe leaves it: the next run says what it
    repairs, and the lab passes."""
    from svclab.probes.outage import OUTAGE_TABLE, freeze, isolate

    kube = cluster.kube()
    running = Running("lab.vip-shortcut", "--name", NAME, env=cluster.env(), cwd=cluster.tmp)
    try:
        deadline = time.monotonic() + 600
        while True:
            svc = kube.get("v1", "Service", "echo-unannounced", "svclab-vip-shortcut") or {}
            if ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                break
            assert running.proc.poll() is None, "the lab ended before its address was written"
            assert time.monotonic() < deadline, "the lab did not write its address within 600 s"
            time.sleep(0.1)
        running.signal(signal.SIGKILL)
        running.proc.wait(timeout=10)
    finally:
        if running.proc.poll() is None:
            running.signal(signal.SIGKILL)
    worker = docker.from_env().containers.get(f"{NAME}-worker2")
    assert isolate(worker).exit_code == 0
    freeze(worker)   # with the retries cgroup v1's freezer needs on a busy node ("unable to freeze")

    again = cluster.run("lab.vip-shortcut", "--name", NAME)
    assert again.returncode == EXIT_OK, str(again)
    assert "stopped before it ended" in again.stderr, str(again)
    assert f"unpaused node {worker.name}" in again.stderr and f"reconnected node {worker.name}" in again.stderr
    worker.reload()
    assert worker.status == "running"
    assert OUTAGE_TABLE not in worker.exec_run(["nft", "list", "tables"]).output.decode()


def test_worker_stopped_mid_lab_then_down_removes_everything(cluster):
    dc = docker.from_env()
    worker = dc.containers.get(f"{NAME}-worker2")

    def stop_worker():
        worker.stop(timeout=5)

    run, data = _lab_with_fault(cluster, "lab.loadbalancer", stop_worker)
    worker.reload()
    assert worker.status == "exited"
    assert run.returncode in (EXIT_MISMATCH, EXIT_FAILURE, EXIT_OK), str(run)
    if run.returncode == EXIT_FAILURE:
        assert len(run.errors) == 1, str(run)
    results = data["results"]
    assert results and all(r["observed"] for r in results)
    failed = [r["probe"] for r in results if not r["passed"]]
    print(f"\nworker stopped mid-lab: exit {run.returncode} after {run.seconds:.0f}s, differed: {failed}")
    assert run.seconds < WAIT * 6
    status = json.loads(cluster.run("cluster.status", "--name", NAME, "--json").stdout)
    assert f"{NAME}-worker2" in status["nodes"]
    # The module's teardown runs `cluster.down` and checks that nothing is left, stopped node included.


def test_frozen_container_inside_a_node_then_down_removes_everything(cluster):
    """A pod container inside the control-plane node left frozen, as runc leaves one when the node
    is killed while it sets the container up (cgroup v1): Docker can then not kill the node, and
    `kind delete` fails. svclab thaws what is frozen inside its own node and deletes again."""
    node = docker.from_env().containers.get(f"{NAME}-control-plane")
    scopes = sorted(Path(f"/sys/fs/cgroup/freezer/docker/{node.id}/kubelet.slice").rglob("cri-containerd-*.scope"))
    assert scopes, f"no pod container cgroups under the freezer hierarchy of {node.name} (a cgroup v1 host is expected)"
    state = scopes[0] / "freezer.state"
    state.write_text("FROZEN")
    deadline = time.monotonic() + 10
    while state.read_text().strip() == "FREEZING" and time.monotonic() < deadline:
        time.sleep(0.1)
    # A task in an uninterruptible sleep can hold the cgroup in FREEZING; svclab thaws that too.
    assert state.read_text().strip() in ("FROZEN", "FREEZING")
    # The module's teardown runs `cluster.down` and checks that nothing is left.


# ------------------------------------------------------------------ Docker daemon restarted

def _other_kind_clusters(mine: str) -> set[str]:
    out = subprocess.run(["docker", "ps", "--filter", "label=io.x-k8s.kind.cluster", "--format",
                          '{{.Label "io.x-k8s.kind.cluster"}}'], capture_output=True, text=True, check=True).stdout
    return {line for line in out.split() if line and line != mine}


def _restart_docker() -> None:
    """Stops dockerd and starts it the way scripts/host-setup.sh does on this machine."""
    pids = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, f"expected one dockerd, found {pids}"
    subprocess.run(["kill", pids[0]], check=True)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pids[0]}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop within 60s"
        time.sleep(0.2)
    setup = subprocess.run(["bash", str(ROOT / "scripts" / "host-setup.sh")], capture_output=True, text=True,
                           timeout=300)
    assert setup.returncode == 0, setup.stderr


@pytest.mark.docker_restart
def test_docker_daemon_restarted(tmp_path):
    """Restarts the Docker daemon under a cluster: svclab then reports what it sees (a lab that
    differs, or one line saying the cluster is broken) within its deadlines, and `cluster.down`
    cleans up. Selected only with SVCLAB_E2E_RESTART_DOCKER=1 (see conftest.py), and run last; the
    other clusters of this test run (svclab-e2e*) live through the restart too."""
    name = PREFIX + "restart"
    others = {other for other in _other_kind_clusters(name) if not other.startswith("svclab-e2e")}
    assert not others, f"this machine runs kind clusters that are not this test run's: {sorted(others)}"
    c = Cluster(tmp_path, name)
    empty = c.counter.snapshot()
    try:
        up = c.run("cluster.up", "--name", name, "--workers", "0")
        assert up.returncode == 0, str(up)
        _restart_docker()
        lab = c.run("lab.clusterip", "--name", name, timeout=WAIT * 10)
        print(f"\nafter a Docker restart: lab.clusterip exited {lab.returncode} after {lab.seconds:.0f}s\n{lab.stderr}")
        assert lab.returncode in (EXIT_OK, EXIT_MISMATCH, EXIT_FAILURE), str(lab)
        assert "Traceback" not in lab.stderr
        if lab.returncode == EXIT_FAILURE:
            assert len(lab.errors) == 1, str(lab)
        assert lab.seconds < WAIT * 8
    finally:
        down = c.run("cluster.down", "--name", name)
        assert down.returncode == 0, str(down)
        changes = diff(empty, c.counter.snapshot())
        assert not changes, "left behind:\n" + "\n".join(changes)
