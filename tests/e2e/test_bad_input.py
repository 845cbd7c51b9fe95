"""Bad input against a real Docker and real kind clusters, through the real command line
(`python -m svclab ...`): each case prints exactly one error line (progress lines aside), exits
with the documented code (2 usage, 3 prerequisite, 4 failure, 130 interrupted) and leaves nothing
behind (tests/e2e/leaks.py).

Cluster names start with `svclab-e2e-bad-`; every test has its own $XDG_STATE_HOME and the
clusters live on a docker network of their own (`svclab-e2e-bad-net`), so that other svclab
clusters on this machine are neither seen nor disturbed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from svclab.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_PREREQUISITE, EXIT_USAGE

from .leaks import LeakCounter, Run, Running, Snapshot, cli_env, diff, installed_copy, kind_binary, svclab

pytestmark = pytest.mark.e2e

PREFIX = "svclab-e2e-bad-"
NETWORK = PREFIX + "net"
SHAPED = PREFIX + "shape"          # the one cluster the cases that need a cluster share
UP_STEPS = 5                       # step lines of a MetalLB `cluster.up`: one interrupt case after each


@dataclasses.dataclass
class Case:
    """One bad-input case: its own state folder and working folder, and a leak count from its start."""

    tmp: Path
    state: Path
    counter: LeakCounter
    before: Snapshot | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(self.state, **{"SVCLAB_NETWORK": NETWORK, **extra})

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 600, **env: str) -> Run:
        return svclab(*args, env=self.env(**env), cwd=cwd or self.tmp, timeout=timeout)

    def expect(self, run: Run, code: int, *words: str, before: Snapshot | None = None) -> str:
        """RUN exited CODE with one error line holding WORDS, and nothing leaked since BEFORE."""
        assert run.returncode == code, str(run)
        assert len(run.errors) == 1 and run.errors[0].startswith("error: "), str(run)
        line = run.errors[0]
        for word in words:
            assert word in line, f"{word!r} not in {line!r}"
        changes = diff(before or self.before, self.counter.snapshot())
        assert not changes, "left behind:\n" + "\n".join(changes)
        return line


@pytest.fixture
def case(tmp_path):
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    c = Case(work, state, LeakCounter(PREFIX, state))
    c.before = c.counter.snapshot()
    yield c
    # A failed case must not spill into the next one: remove what it left (the shared cluster aside).
    c.counter.remove_everything(keep=[SHAPED, NETWORK])


# ------------------------------------------------------------------ flags and settings

def test_unknown_lab(case):
    case.expect(case.run("lab.nosuch"), EXIT_USAGE, "lab.nosuch")


def test_unknown_flag(case):
    case.expect(case.run("cluster.up", "--no-such-flag"), EXIT_USAGE, "--no-such-flag")


def test_unknown_provider(case):
    case.expect(case.run("cluster.up", "--name", PREFIX + "x", "--provider", "bogus"), EXIT_USAGE,
                "unknown provider 'bogus'", "metallb")


def test_invalid_cluster_name(case):
    case.expect(case.run("cluster.up", "--name", "Bad_Name"), EXIT_USAGE, "invalid cluster name 'Bad_Name'")


def test_cluster_name_too_long(case):
    case.expect(case.run("cluster.up", "--name", "a" * 41), EXIT_USAGE, "invalid cluster name", "40 characters")


@pytest.mark.parametrize("workers", ["9", "-1"])
def test_workers_out_of_range(case, workers):
    case.expect(case.run("cluster.up", "--name", PREFIX + "x", "--workers", workers), EXIT_USAGE,
                f"workers must be between 0 and 5, got {workers}")


def test_workers_not_a_number(case):
    case.expect(case.run("cluster.up", "--name", PREFIX + "x", "--workers", "two"), EXIT_USAGE,
                "--workers", "'two'")


@pytest.mark.parametrize("text, words", [
    ("workers: [1\n", ("svclab.yaml", "not valid YAML", "line")),
    ("wrokers: 1\n", ("svclab.yaml", "unknown setting 'wrokers'")),
    ("workers: {two: 2}\n", ("svclab.yaml", "workers has an invalid value")),
    ("- workers\n", ("svclab.yaml", "expected a mapping")),
], ids=["bad-yaml", "unknown-key", "wrong-type", "not-a-mapping"])
def test_malformed_svclab_yaml(case, text, words):
    (case.tmp / "svclab.yaml").write_text(text)
    case.expect(case.run("cluster.up", "--name", PREFIX + "x"), EXIT_USAGE, *words)


def test_config_file_named_but_missing(case):
    case.expect(case.run("cluster.up", "--name", PREFIX + "x", SVCLAB_CONFIG=str(case.tmp / "absent.yaml")),
                EXIT_USAGE, "absent.yaml", "does not exist")


@pytest.mark.parametrize("key, value, words", [
    ("SVCLAB_POOL_SIZE", "2", ("pool_size must be between 4 and 256",)),
    ("SVCLAB_KUBE_PROXY_MODE", "ebpf", ("unknown kube-proxy mode 'ebpf'",)),
    ("SVCLAB_WAIT_TIMEOUT", "-5", ("timeouts must be positive",)),
    ("SVCLAB_NETWORK", "Not_A_Network", ("invalid docker network name",)),
])
def test_bad_environment_setting(case, key, value, words):
    case.expect(case.run("cluster.up", "--name", PREFIX + "x", **{key: value}), EXIT_USAGE, *words)


def test_invalid_lab_definition(case):
    """The labs are package data (svclab.builtin.labs). A copy of the package laid out as it is
    installed, with one broken lab.yaml, is run as the real command line from that copy."""
    copy = case.tmp / "installed"
    (installed_copy(copy) / "pending" / "lab.yaml").write_text(
        "title: broken\nprobes:\n  - id: p\n    kind: teleport\n    expect: {answers: true}\n")
    run = case.run("lab.pending", "--name", PREFIX + "x", cwd=copy)
    case.expect(run, EXIT_USAGE, "labs/pending/lab.yaml", "unknown kind 'teleport'")


# ------------------------------------------------------------------ prerequisites

def _bin_with(tmp: Path, *tools: str) -> str:
    """A PATH folder holding only TOOLS (linked to the real ones)."""
    folder = tmp / "path-bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool) or str(Path(kind_binary()).parent / tool)
        (folder / tool).symlink_to(real)
    return str(folder)


def test_docker_unreachable(case):
    case.expect(case.run("cluster.up", "--name", PREFIX + "x", DOCKER_HOST="unix:///nonexistent.sock"),
                EXIT_PREREQUISITE, "Docker does not answer", "start Docker")


def test_kind_missing(case):
    # svclab's own tool folder is empty and PATH has Docker and kubectl only.
    run = case.run("cluster.up", "--name", PREFIX + "x", XDG_DATA_HOME=str(case.tmp / "data"),
                   PATH=_bin_with(case.tmp, "docker", "kubectl"))
    case.expect(run, EXIT_PREREQUISITE, "kind was not found", "install kind")


def test_kubectl_missing(case):
    tools = case.tmp / "data" / "svclab" / "bin"
    tools.mkdir(parents=True)
    (tools / "kind").symlink_to(kind_binary())
    run = case.run("cluster.up", "--name", PREFIX + "x", XDG_DATA_HOME=str(case.tmp / "data"),
                   PATH=_bin_with(case.tmp, "docker"))
    case.expect(run, EXIT_PREREQUISITE, "kubectl was not found", "install kubectl")


def test_absent_node_image(case):
    run = case.run("cluster.up", "--name", PREFIX + "noimage", "--node-image", "svclab.local/absent:v0")
    case.expect(run, EXIT_PREREQUISITE, "svclab.local/absent:v0", "cannot be pulled", "drop --node-image")


# ------------------------------------------------------------------ docker networks and pools

def test_foreign_docker_network_is_left_alone(case):
    foreign = PREFIX + "foreign"
    before = case.counter.snapshot()
    subprocess.run(["docker", "network", "create", foreign], check=True, capture_output=True)
    try:
        with_net = case.counter.snapshot()
        run = case.run("cluster.up", "--name", PREFIX + "x", SVCLAB_NETWORK=foreign)
        case.expect(run, EXIT_USAGE, f"docker network {foreign} exists but svclab did not create it", before=with_net)
    finally:
        subprocess.run(["docker", "network", "rm", foreign], capture_output=True)
    assert not diff(before, case.counter.snapshot())


def test_address_pool_exhausted(case):
    """A network of svclab's (labelled as such) whose subnet is too small for the pool: a /28 has 13
    usable addresses, the default pool needs 32 and one for the client."""
    dc = docker.from_env()
    tiny = PREFIX + "tiny"
    # Let Docker pick a free range, then make the network again with a /28 inside it.
    probe = dc.networks.create(tiny, driver="bridge")
    probe.reload()
    subnet = next(c["Subnet"] for c in probe.attrs["IPAM"]["Config"] if ":" not in c["Subnet"])
    probe.remove()
    small = next(ipaddress.ip_network(subnet).subnets(new_prefix=28))
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(small))])
    net = dc.networks.create(tiny, driver="bridge", ipam=ipam, labels={"svclab.io/managed": "true"})
    try:
        with_net = case.counter.snapshot()
        run = case.run("cluster.up", "--name", PREFIX + "x", SVCLAB_NETWORK=tiny)
        case.expect(run, EXIT_FAILURE, "no free block of 33 addresses", str(small), "lower pool_size",
                    before=with_net)
    finally:
        net.remove()


# ------------------------------------------------------------------ results files

@pytest.mark.parametrize("content, words", [
    (None, ("absent.json", "not a readable results file")),
    ("{not json", ("garbage.json", "not a readable results file")),
    ("[1, 2, 3]", ("garbage.json",)),
    ('{"results": 5}', ("garbage.json",)),
], ids=["missing", "not-json", "json-list", "results-not-a-list"])
def test_report_compare_with_bad_file(case, content, words):
    path = case.tmp / ("absent.json" if content is None else "garbage.json")
    if content is not None:
        path.write_text(content)
    case.expect(case.run("report.compare", "--results", str(path)), EXIT_USAGE, *words)


def test_report_compare_without_files(case):
    case.expect(case.run("report.compare"), EXIT_USAGE, "no result files given")


# ------------------------------------------------------------------ svclab's own state damaged

def test_damaged_cluster_record(case):
    folder = case.state / "svclab" / "clusters" / (PREFIX + "damaged")
    folder.mkdir(parents=True)
    (folder / "cluster.json").write_text("{half a record")
    before = case.counter.snapshot()
    case.expect(case.run("cluster.up", "--name", PREFIX + "damaged"), EXIT_FAILURE, "cluster.json is damaged",
                before=before)


# ------------------------------------------------------------------ clusters svclab did not create

def test_cluster_svclab_did_not_create(case):
    """A bare `kind create cluster` of the same name: svclab neither reuses nor deletes it."""
    name = PREFIX + "bare"
    image = os.environ.get("SVCLAB_NODE_IMAGE")
    bare_net = PREFIX + "barenet"
    subprocess.run(["docker", "network", "create", bare_net], check=True, capture_output=True)
    env = {**os.environ, "KIND_EXPERIMENTAL_DOCKER_NETWORK": bare_net}
    create = ["create", "cluster", "--name", name, "--kubeconfig", str(case.tmp / "bare.kubeconfig")]
    try:
        proc = subprocess.run([kind_binary(), *create, *(["--image", image] if image else [])],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
        nodes = case.counter.node_ids(name)
        assert nodes
        with_bare = case.counter.snapshot()
        case.expect(case.run("cluster.up", "--name", name, "--workers", "0"), EXIT_USAGE,
                    f"kind cluster named {name} exists but svclab did not create it", before=with_bare)
        case.expect(case.run("cluster.down", "--name", name), EXIT_USAGE,
                    f"cluster {name} was not created by svclab", before=with_bare)
        assert case.counter.node_ids(name) == nodes
    finally:
        delete = [kind_binary(), "delete", "cluster", "--name", name, "--kubeconfig", str(case.tmp / "bare.kubeconfig")]
        subprocess.run(delete, capture_output=True, timeout=300, env=env)
        # On cgroup v1 a node whose pod set-up froze cannot be killed by Docker until it is thawed
        # (svclab's own `down` does this for its clusters; this one is not svclab's).
        left = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=io.x-k8s.kind.cluster={name}"],
                              capture_output=True, text=True).stdout.split()
        if left:
            from svclab import freezer

            for container_id in left:
                freezer.thaw(container_id)
            subprocess.run(delete, capture_output=True, timeout=300, env=env)
        subprocess.run(["docker", "network", "rm", bare_net], capture_output=True)
    assert not diff(case.before, case.counter.snapshot())


# ------------------------------------------------------------------ a cluster of another shape

@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    """One svclab cluster (0 workers, MetalLB) for the cases that need an existing cluster; its
    uninterrupted `cluster.up` also tells the interrupt cases which steps there are."""
    tmp = tmp_path_factory.mktemp("shaped")
    state = tmp / "state"
    counter = LeakCounter(PREFIX, state)
    empty = counter.snapshot()
    run = svclab("cluster.up", "--name", SHAPED, "--workers", "0", env=cli_env(state, SVCLAB_NETWORK=NETWORK),
                 cwd=tmp)
    try:
        assert run.returncode == 0, str(run)
        yield Case(tmp, state, counter), run
    finally:
        down = svclab("cluster.down", "--name", SHAPED, env=cli_env(state, SVCLAB_NETWORK=NETWORK), cwd=tmp)
        assert down.returncode == 0, str(down)
        assert not diff(empty, counter.snapshot())


def test_cluster_of_another_shape(shaped):
    c, _ = shaped
    before = c.counter.snapshot()
    c.before = before
    c.expect(c.run("cluster.up", "--name", SHAPED, "--workers", "1"), EXIT_USAGE,
             f"cluster {SHAPED} exists with workers=0, and --workers asks for 1", "cluster.down")
    c.expect(c.run("cluster.up", "--name", SHAPED, "--workers", "0", SVCLAB_KUBE_PROXY_MODE="ipvs"), EXIT_USAGE,
             "kube_proxy_mode='iptables', and SVCLAB_KUBE_PROXY_MODE asks for 'ipvs'")


def test_provider_switch_on_existing_cluster(shaped):
    c, _ = shaped
    c.before = c.counter.snapshot()
    c.expect(c.run("cluster.up", "--name", SHAPED, "--workers", "0", "--provider", "none"), EXIT_USAGE,
             f"cluster {SHAPED} runs provider 'metallb'", "cluster.down")


def test_lab_on_a_cluster_that_is_not_up(shaped):
    """Its node containers stopped (a reboot without Docker's restart, `docker stop`): the lab says
    so in one line instead of waiting or starting what it did not create."""
    c, _ = shaped
    nodes = c.counter.node_ids(SHAPED)
    dc = docker.from_env()
    for node in nodes.values():
        dc.containers.get(node).stop(timeout=5)
    c.before = c.counter.snapshot()
    run = c.run("lab.clusterip", "--name", SHAPED, "--workers", "0", timeout=300)
    c.expect(run, EXIT_FAILURE, "not running")
    assert run.seconds < 120, str(run)


# ------------------------------------------------------------------ Ctrl-C during each step of cluster.up

def test_up_steps_were_discovered(shaped):
    _, run = shaped
    assert len(run.steps) == UP_STEPS, f"cluster.up printed {len(run.steps)} steps (update UP_STEPS): {run.steps}"
    assert run.steps[0].startswith(f"creating kind cluster {SHAPED}")


def _stop_up_after_step(case, name: str, n: int, stop) -> None:
    """Runs `cluster.up`, calls STOP(running) right after its Nth step line, and checks the
    result: exit 130, one line saying it was interrupted, nothing of it left."""
    running = Running("cluster.up", "--name", name, "--workers", "0", env=case.env(), cwd=case.tmp)
    try:
        seen = running.wait_for_steps(n, timeout=600, tick=case.counter.observe)
        stop(running)
        run = running.finish(timeout=300, tick=case.counter.observe)
    finally:
        if running.proc.poll() is None:
            running.signal(signal.SIGKILL)
    assert run.returncode == EXIT_INTERRUPTED, f"stopped after step {n} ({seen[-1]!r}):\n{run}"
    assert run.errors == ["error: interrupted"], str(run)
    changes = diff(case.before, case.counter.snapshot())
    assert not changes, f"stopped after step {n} ({seen[-1]!r}), left behind:\n" + "\n".join(changes)
    assert not (case.state / "svclab" / "clusters" / name).exists()


@pytest.mark.parametrize("n", range(1, UP_STEPS + 1))
def test_interrupt_during_up(case, shaped, n):
    """SIGINT to the command's process group (what Ctrl-C does) right after the Nth step line."""
    _stop_up_after_step(case, f"{PREFIX}int{n}", n, lambda running: running.signal(signal.SIGINT))


@pytest.mark.parametrize("n", [1, 2])
def test_terminate_during_up(case, n):
    """SIGTERM to the svclab process alone (`kill`, `timeout`, a cancelled CI job) after the Nth
    step line: the same undo as for Ctrl-C."""
    _stop_up_after_step(case, f"{PREFIX}term{n}", n, lambda running: os.kill(running.proc.pid, signal.SIGTERM))


def _node_has(container: str, path: str) -> bool:
    proc = subprocess.run(["docker", "exec", container, "test", "-e", path], capture_output=True, timeout=30)
    return proc.returncode == 0


@pytest.mark.parametrize("moment", ["node-container-created", "kubeadm-init-running"])
def test_interrupt_while_kind_creates_the_nodes(case, moment):
    """Ctrl-C inside the kind step: once the node container exists, and once kubeadm has begun
    writing the control plane's configuration in it."""
    name = f"{PREFIX}kc{'1' if moment.startswith('node') else '2'}"
    node = f"{name}-control-plane"
    running = Running("cluster.up", "--name", name, "--workers", "0", env=case.env(), cwd=case.tmp)
    try:
        running.wait_for_steps(1, timeout=300, tick=case.counter.observe)
        deadline = time.monotonic() + 300
        while True:
            assert running.proc.poll() is None, "cluster.up ended before the moment came:\n" + "".join(running.stderr)
            assert time.monotonic() < deadline, f"no {moment} within 300s"
            case.counter.observe()
            if case.counter.node_ids(name) and (moment.startswith("node")
                                                or _node_has(node, "/etc/kubernetes/manifests/kube-apiserver.yaml")):
                break
            time.sleep(0.2)
        running.signal(signal.SIGINT)
        run = running.finish(timeout=300, tick=case.counter.observe)
    finally:
        if running.proc.poll() is None:
            running.signal(signal.SIGKILL)
    assert run.returncode == EXIT_INTERRUPTED, str(run)
    assert run.errors == ["error: interrupted"], str(run)
    if moment.startswith("kubeadm"):
        assert case.counter.known_volumes, "the node's volume was never seen"
    changes = diff(case.before, case.counter.snapshot())
    assert not changes, f"interrupted at {moment}, left behind:\n" + "\n".join(changes)
