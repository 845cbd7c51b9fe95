"""The command line's answers to bad input: one line, the documented exit code, no traceback."""

import subprocess
import sys

import pytest


def svclab(*args, env=None):
    return subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("args, code, message", [
    (["cluster.up", "--name", "Bad_Name"], 2, "invalid cluster name"),
    (["cluster.up", "--provider", "f5"], 2, "unknown provider 'f5'"),
    (["cluster.up", "--workers", "9"], 2, "workers must be between 0 and 5"),
    (["lab.nodeport", "--workers", "many"], 2, "invalid value"),
])
def test_bad_input(args, code, message, tmp_path):
    proc = svclab(*args, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_docker_down_is_a_prerequisite_error(tmp_path):
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    proc = svclab("cluster.up", env=env)
    assert proc.returncode == 3, proc.stderr
    assert "Docker does not answer" in proc.stderr and "host-setup.sh" in proc.stderr
    assert not (tmp_path / ".local" / "state").exists()


def test_lab_list():
    proc = svclab("lab.list")
    assert proc.returncode == 0
    assert "nodeport" in proc.stdout and "C5" in proc.stdout
