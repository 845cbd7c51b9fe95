"""Cleanup guarantee on a real Docker: many `cluster.up`/`cluster.down` cycles leave nothing, `down`
cleans up after an `up` that was killed, and `up` on a cluster that is up changes nothing.

Cluster names start with `svclab-e2e-cyc-`; the clusters live on their own docker network and
each test has its own $XDG_STATE_HOME (tests/e2e/leaks.py counts what is left).
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .leaks import LeakCounter, Running, cli_env, diff, home_kubeconfig_digest, svclab

pytestmark = pytest.mark.e2e

PREFIX = "svclab-e2e-cyc-"
NETWORK = PREFIX + "net"
CHEAP = ("--workers", "0", "--provider", "none")
CYCLES = 20


def _env(state: Path, **extra: str) -> dict[str, str]:
    return cli_env(state, SVCLAB_NETWORK=NETWORK, **extra)


@pytest.fixture
def counter(tmp_path):
    c = LeakCounter(PREFIX, tmp_path / "state")
    yield c
    c.remove_everything()   # after a failure only: a passing test has left nothing to remove


def test_up_down_cycles_leave_nothing(tmp_path, counter, record_property):
    name = PREFIX + "loop"
    env = _env(counter.state_home)
    empty = counter.snapshot()
    assert not empty.nonempty(), f"left from an earlier run: {empty.nonempty()}"
    seconds = []
    for cycle in range(1, CYCLES + 1):
        up = svclab("cluster.up", "--name", name, *CHEAP, env=env, cwd=tmp_path)
        assert up.returncode == 0, f"cycle {cycle}: {up}"
        assert not up.errors, f"cycle {cycle}: {up}"
        alive = counter.snapshot(settle=0)
        assert {c.split()[0] for c in alive.containers} == {f"{name}-control-plane", f"svclab-client-{name}"}
        assert alive.kind_clusters == {name} and alive.volumes and alive.networks
        down = svclab("cluster.down", "--name", name, env=env, cwd=tmp_path)
        assert down.returncode == 0 and not down.errors, f"cycle {cycle}: {down}"
        changes = diff(empty, counter.snapshot())
        assert not changes, f"cycle {cycle} left behind:\n" + "\n".join(changes)
        seconds.append((round(up.seconds, 1), round(down.seconds, 1)))
    ups = [u for u, _ in seconds]
    record_property("cycle_seconds", json.dumps(seconds))
    print(f"\n{CYCLES} cycles: up {min(ups)}-{max(ups)}s (mean {sum(ups) / len(ups):.1f}s), "
          f"down {min(d for _, d in seconds)}-{max(d for _, d in seconds)}s")


# ------------------------------------------------------------------ `down` after `up` was killed

def _kubeadm_started(node: str) -> bool:
    proc = subprocess.run(["docker", "exec", node, "test", "-e", "/etc/kubernetes/manifests/kube-apiserver.yaml"],
                          capture_output=True, timeout=30)
    return proc.returncode == 0


@pytest.mark.parametrize("moment", ["kind-creating", "last-step"])
def test_down_after_up_was_killed(tmp_path, counter, moment):
    """SIGKILL to `cluster.up` and everything it started (its process group), while kind creates the
    node or after the last step line; `cluster.down --name` must then remove the node, the client
    container, the network, the kubeconfig and the state folder."""
    name = PREFIX + ("crash1" if moment == "kind-creating" else "crash2")
    env = _env(counter.state_home)
    empty = counter.snapshot()
    first = svclab("cluster.up", "--name", name, *CHEAP, env=env, cwd=tmp_path) if moment == "last-step" else None
    if first:   # learn how many steps there are, then start again from nothing
        assert first.returncode == 0, str(first)
        assert svclab("cluster.down", "--name", name, env=env, cwd=tmp_path).returncode == 0
    running = Running("cluster.up", "--name", name, *CHEAP, env=env, cwd=tmp_path)
    try:
        if moment == "kind-creating":
            running.wait_for_steps(1, timeout=300, tick=counter.observe)
            deadline = time.monotonic() + 300
            while not (counter.node_ids(name) and _kubeadm_started(f"{name}-control-plane")):
                assert running.proc.poll() is None, "up ended first:\n" + "".join(running.stderr)
                assert time.monotonic() < deadline, "kubeadm did not start within 300s"
                counter.observe()
                time.sleep(0.2)
        else:
            running.wait_for_steps(len(first.steps), timeout=600, tick=counter.observe)
        counter.observe()
    finally:
        running.signal(signal.SIGKILL)
    killed = running.finish(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    crashed = counter.snapshot(settle=0)
    assert f"{name}-control-plane" in {c.split()[0] for c in crashed.containers}
    assert any(p.startswith(f"clusters/{name}/") for p in crashed.state)

    down = svclab("cluster.down", "--name", name, env=env, cwd=tmp_path)
    assert down.returncode == 0 and not down.errors, str(down)
    changes = diff(empty, counter.snapshot())
    assert not changes, "left behind:\n" + "\n".join(changes)


# ------------------------------------------------------------------ `up` twice, and what it writes

@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """`cluster.up --verbose` on a new cluster, then `cluster.up` again; `down` afterwards."""
    tmp = tmp_path_factory.mktemp("twice")
    counter = LeakCounter(PREFIX, tmp / "state")
    name = PREFIX + "twice"
    env = _env(counter.state_home)
    home = home_kubeconfig_digest()
    empty = counter.snapshot()
    try:
        first = svclab("cluster.up", "--name", name, *CHEAP, "--verbose", env=env, cwd=tmp)
        assert first.returncode == 0, str(first)
        after_first = counter.snapshot()
        nodes, pool = counter.node_ids(name), (counter.state_dir / "clusters" / name / "pool.json").read_text()
        second = svclab("cluster.up", "--name", name, *CHEAP, env=env, cwd=tmp)
        yield {"name": name, "first": first, "second": second, "after_first": after_first,
               "after_second": counter.snapshot(), "nodes": (nodes, counter.node_ids(name)),
               "pool": (pool, (counter.state_dir / "clusters" / name / "pool.json").read_text()),
               "counter": counter, "home": home}
    finally:
        down = svclab("cluster.down", "--name", name, env=env, cwd=tmp)
        assert down.returncode == 0, str(down)
        changes = diff(empty, counter.snapshot())
        assert not changes, "left behind:\n" + "\n".join(changes)
        assert home_kubeconfig_digest() == home, "~/.kube/config changed"


def test_second_up_changes_nothing(twice):
    second = twice["second"]
    assert second.returncode == 0, str(second)
    assert second.steps[0] == f"reusing cluster {twice['name']}", str(second)
    assert not any(s.startswith("creating kind cluster") for s in second.steps)
    assert twice["nodes"][0] == twice["nodes"][1] and twice["nodes"][0]
    assert twice["pool"][0] == twice["pool"][1]
    changes = diff(twice["after_first"], twice["after_second"])
    assert not changes, "the second up changed:\n" + "\n".join(changes)


def test_state_folder_and_kubeconfig_are_private(twice):
    state = twice["counter"].state_dir
    cluster_dir = state / "clusters" / twice["name"]
    for folder in (state, state / "clusters", cluster_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, f"{folder}: {oct(folder.stat().st_mode)}"
    kubeconfig = cluster_dir / "kubeconfig"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600, oct(kubeconfig.stat().st_mode)


def test_verbose_output_holds_no_credentials(twice):
    first = twice["first"]
    assert any(line.startswith("   $ ") for line in first.stderr.splitlines()), "verbose showed no command"
    data = yaml.safe_load((twice["counter"].state_dir / "clusters" / twice["name"] / "kubeconfig").read_text())
    secrets = []
    for user in data["users"]:
        for key in ("client-key-data", "client-certificate-data", "token", "password"):
            if user["user"].get(key):
                secrets.append(user["user"][key])
    assert secrets, "the kubeconfig has no credentials to look for"
    output = first.stdout + first.stderr
    for secret in secrets:
        assert secret[:40] not in output and secret[-40:] not in output
    assert "PRIVATE KEY" not in output


def test_home_kubeconfig_untouched(twice):
    assert home_kubeconfig_digest() == twice["home"]
    for snapshot in (twice["after_first"], twice["after_second"]):
        assert snapshot.home_kubeconfig == {f"sha256 {twice['home']}"}, snapshot.home_kubeconfig
