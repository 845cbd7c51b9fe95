"""svclab reaches the Docker engine the Docker CLI would: DOCKER_HOST, else the CLI's current
context (Docker Desktop, colima, OrbStack and rootless Docker live behind contexts). Contexts are
made in a Docker config folder of the test's own, so the user's is never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def _docker(config, *args):
    return subprocess.run(["docker", "--config", str(config), *args], capture_output=True, text=True, check=True)


def _svclab(env, *args):
    return subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.fixture
def config(tmp_path):
    folder = tmp_path / "docker-config"
    folder.mkdir()
    # The engine under another address, as a context would name Docker Desktop's or colima's socket.
    (tmp_path / "engine.sock").symlink_to("/var/run/docker.sock")
    _docker(folder, "context", "create", "elsewhere", "--docker", f"host=unix://{tmp_path / 'engine.sock'}")
    _docker(folder, "context", "create", "nowhere", "--docker", f"host=unix://{tmp_path / 'missing.sock'}")
    return folder


def _env(config, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    return {**env, "DOCKER_CONFIG": str(config), **extra}


def test_the_current_context_is_followed(config):
    _docker(config, "context", "use", "nowhere")
    proc = _svclab(_env(config), "doctor", "--json")
    docker_row = next(f for f in json.loads(proc.stdout) if f["check"] == "docker")
    assert proc.returncode == 3 and docker_row["status"] == "fail", proc.stdout
    refused = _svclab(_env(config), "cluster.up", "--name", "svclab-e2e-context")
    assert refused.returncode == 3 and "Docker does not answer" in refused.stderr, refused.stderr

    _docker(config, "context", "use", "elsewhere")
    proc = _svclab(_env(config), "doctor", "--json")
    docker_row = next(f for f in json.loads(proc.stdout) if f["check"] == "docker")
    assert docker_row["status"] == "ok", proc.stdout


def test_docker_context_and_docker_host_win_over_the_current_context(config, tmp_path):
    _docker(config, "context", "use", "nowhere")
    for extra in ({"DOCKER_CONTEXT": "elsewhere"}, {"DOCKER_HOST": f"unix://{tmp_path / 'engine.sock'}"}):
        proc = _svclab(_env(config, **extra), "doctor", "--json")
        docker_row = next(f for f in json.loads(proc.stdout) if f["check"] == "docker")
        assert docker_row["status"] == "ok", (extra, proc.stdout)
