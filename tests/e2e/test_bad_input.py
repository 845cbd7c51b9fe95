"""Bad input against a real Docker: one clear line, the documented exit code, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import docker_objects

pytestmark = pytest.mark.e2e


def svclab_env(*args, **env):
    return subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_foreign_docker_network_is_left_alone(tmp_path):
    subprocess.run(["docker", "network", "create", "svclab-foreign-net"], check=True, capture_output=True)
    try:
        before = docker_objects("svclab.io/cluster=svclab-e2e-foreign")
        proc = svclab_env("cluster.up", "--name", "svclab-e2e-foreign", SVCLAB_NETWORK="svclab-foreign-net",
                          XDG_STATE_HOME=str(tmp_path))
        lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith((" •", " !"))]
        assert proc.returncode == 2, proc.stderr
        assert lines == [lines[0]] and "exists but svclab did not create it" in lines[0]
        assert docker_objects("svclab.io/cluster=svclab-e2e-foreign") == before
        assert not (tmp_path / "svclab" / "clusters" / "svclab-e2e-foreign").exists()
        kind_nodes = subprocess.run(["docker", "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster=svclab-e2e-foreign",
                                     "-q"], capture_output=True, text=True).stdout
        assert kind_nodes == ""
    finally:
        subprocess.run(["docker", "network", "rm", "svclab-foreign-net"], capture_output=True)


def test_absent_node_image_fails_cleanly(tmp_path):
    proc = svclab_env("cluster.up", "--name", "svclab-e2e-noimage", "--node-image", "svclab.local/absent:v0",
                      XDG_STATE_HOME=str(tmp_path))
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be pulled" in lines[0] and "testbed.build" in lines[0], proc.stderr
    assert docker_objects("svclab.io/cluster=svclab-e2e-noimage") == {"containers": [], "networks": []}
    assert subprocess.run(["docker", "ps", "-a", "-q", "--filter", "label=io.x-k8s.kind.cluster=svclab-e2e-noimage"],
                          capture_output=True, text=True).stdout == ""
    assert not (tmp_path / "svclab" / "clusters" / "svclab-e2e-noimage").exists()
