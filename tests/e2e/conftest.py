"""End-to-end tests: a real kind cluster, real MetalLB, real HTTP. They fail, never skip, when the
cluster cannot be built: set SVCLAB_NODE_IMAGE / SVCLAB_MIRROR (scripts/test.sh does) on hosts
without registry access."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLUSTER = os.environ.get("SVCLAB_E2E_CLUSTER", "svclab-e2e")
RESTART_DOCKER = os.environ.get("SVCLAB_E2E_RESTART_DOCKER") == "1"


def pytest_collection_modifyitems(config, items):
    """Tests that restart the Docker daemon run only where SVCLAB_E2E_RESTART_DOCKER=1 says this
    machine's Docker is svclab's to restart (CI does), and then last of all. Never among xdist's
    workers: the restart would stop the other workers' clusters (scripts/test.sh runs them alone
    afterwards)."""
    restarting = [item for item in items if item.get_closest_marker("docker_restart")]
    if not restarting:
        return
    items[:] = [item for item in items if item not in restarting]
    if RESTART_DOCKER and not hasattr(config, "workerinput"):
        items.extend(restarting)
    else:
        config.hook.pytest_deselected(items=restarting)


def svclab(*args: str, check: bool = True, timeout: float = 1200,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`svclab ARGS` in a child process (with ENV added to this one's environment)."""
    proc = subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)
    if check and proc.returncode != 0:
        raise AssertionError(f"svclab {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def docker_objects(label: str) -> dict[str, list[str]]:
    def ls(*cmd):
        out = subprocess.run(["docker", *cmd, "--filter", f"label={label}", "--format", "{{.Names}}" if cmd[0] == "ps" else "{{.Name}}"],
                             capture_output=True, text=True, check=True).stdout
        return sorted(line for line in out.splitlines() if line)

    return {"containers": ls("ps", "-a"), "networks": ls("network", "ls")}


@pytest.fixture(scope="session")
def cluster():
    """One MetalLB cluster for the whole session, deleted at the end (unless SVCLAB_KEEP_CLUSTER)."""
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True)
    assert proc.returncode == 0, "Docker does not answer: run scripts/host-setup.sh"
    svclab("cluster.up", "--name", CLUSTER, "--provider", "metallb")
    yield CLUSTER
    if not os.environ.get("SVCLAB_KEEP_CLUSTER"):
        svclab("cluster.down", "--name", CLUSTER)


def run_labs(task: str, *args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / f"{task}.json"
    proc = svclab(task, *args, "--json", str(out), "--quiet", check=False)
    assert out.exists(), f"no JSON written\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(out.read_text())


@pytest.fixture(scope="session")
def metallb_all(cluster, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    """lab.all on the session's MetalLB cluster, run once: (the process, its results, their file)."""
    folder = tmp_path_factory.mktemp("metallb-all")
    proc, data = run_labs("lab.all", "--name", cluster, "--html", str(folder / "lab.all.html"), tmp_path=folder)
    return proc, data, folder / "lab.all.json"
