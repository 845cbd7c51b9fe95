"""svclab as its users have it: the wheel installed into a fresh virtual environment of a user
without root who is in the docker group (made by this test), away from the checkout, with the
test bed's images and kind and kubectl where `svclab doctor` says to put them.

- `svclab doctor` and a lab pass, and nothing is written outside that user's svclab state and
  cache folders; the checkout's host setup on this already-working Docker changes nothing and
  asks for no password.
- With that user's packets to the cluster's docker network rejected by a packet filter (as on
  macOS or Windows, where the host has no route to it), a direct request fails and a lab that
  probes from outside the cluster still passes: svclab goes through the client container and the
  API server's loopback port only.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from svclab.cluster import find_tool
from svclab.config import load_settings

from ..dist import ROOT, build_dists

pytestmark = pytest.mark.e2e

USER = "svclab-student"
CLUSTER = "svclab-e2e-student"
NETWORK = "svclab-e2e-student-net"   # its own: its pool is carved beside no other test's cluster
CUT_COMMENT = "svclab-e2e: no route from svclab to the cluster network"


class Student:
    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env = home, env
        self.uid = pwd.getpwnam(USER).pw_uid

    def run(self, *argv: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in self.env.items()),
                               *argv], capture_output=True, text=True, timeout=timeout, cwd=str(self.home),
                              stdin=subprocess.DEVNULL)
        if check:
            assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def svclab(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.home / "venv" / "bin" / "svclab"), *args, **kwargs)


def _remove_user() -> None:
    if subprocess.run(["id", USER], capture_output=True).returncode == 0:
        subprocess.run(["pkill", "-u", USER], capture_output=True)
        subprocess.run(["userdel", "--remove", USER], capture_output=True, check=True)


def _give(path: Path, uid: int, gid: int) -> None:
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, gid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    settings = load_settings()
    dists = build_dists(tmp_path_factory.mktemp("dist"))
    _remove_user()
    subprocess.run(["useradd", "--create-home", "--groups", "docker", "--shell", "/bin/bash", USER], check=True)
    entry = pwd.getpwnam(USER)
    home = Path(entry.pw_dir)
    try:
        wheel = home / dists["wheel"].name
        shutil.copy2(dists["wheel"], wheel)
        # What a user does by hand (doctor names the commands): kind and kubectl into svclab's
        # own tool folder, and the pinned upstream files where `svclab images.load` puts them.
        tools = home / ".local" / "share" / "svclab" / "bin"
        tools.mkdir(parents=True)
        for tool in ("kind", "kubectl"):
            shutil.copy2(find_tool(tool, settings), tools / tool)
        mirror = home / ".cache" / "svclab" / "mirror"
        shutil.copytree(settings.mirror or settings.cache_dir / "mirror", mirror)
        _give(home, entry.pw_uid, entry.pw_gid)
        env = {"HOME": str(home), "USER": USER, "PATH": f"{home}/venv/bin:/usr/local/bin:/usr/bin:/bin",
               "SVCLAB_MIRROR": str(mirror), "SVCLAB_NETWORK": NETWORK, "SVCLAB_NODE_IMAGE": os.environ.get("SVCLAB_NODE_IMAGE", "")}
        s = Student(home, env)
        s.run("/usr/bin/python3", "-m", "venv", str(home / "venv"))
        s.run(str(home / "venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel))
        assert str(ROOT) not in s.run(str(home / "venv" / "bin" / "python"), "-c",
                                      "import svclab.resources as r; print(r.labs_dir())").stdout
        yield s
        s.svclab("cluster.down", "--name", CLUSTER, check=False)
    finally:
        _remove_user()


def _written_since(stamp: float, roots: list[Path]) -> list[str]:
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                path = Path(folder) / name
                try:
                    if path.lstat().st_mtime >= stamp:
                        found.append(str(path))
                except FileNotFoundError:
                    pass
    return sorted(found)


def _digest(path: str) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).exists() else None


def test_doctor_and_a_lab_as_a_user_without_root(student):
    home = student.home
    watched = {p: _digest(p) for p in ("/etc/docker/daemon.json", "/proc/sys/fs/inotify/max_user_watches",
                                       "/proc/sys/fs/inotify/max_user_instances")}
    stamp = time.time() - 1
    time.sleep(1.1)   # mtimes are compared at one-second resolution on some file systems

    setup = student.run("bash", str(ROOT / "scripts" / "host-setup.sh"), timeout=120, check=False)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "password" not in (setup.stdout + setup.stderr).lower()
    assert {p: _digest(p) for p in watched} == watched

    doctor = student.svclab("doctor", "--json", check=False)
    findings = json.loads(doctor.stdout)
    assert doctor.returncode == 0 and not [f for f in findings if f["status"] == "fail"], doctor.stdout
    assert {f["check"] for f in findings} >= {"docker", "kind", "kubectl"}

    lab = student.svclab("lab.nodeport", "--name", CLUSTER, "--json", "-", "--quiet", check=False)
    assert lab.returncode == 0, lab.stdout[-2000:] + lab.stderr[-3000:]
    results = json.loads(lab.stdout)["results"]       # stdout is the JSON alone
    assert len(results) >= 7 and all(r["passed"] for r in results)

    # svclab's own folders, and the user's virtual environment (where Python caches bytecode).
    own = [home / ".local" / "state" / "svclab", home / ".cache" / "svclab", home / "venv"]
    written = _written_since(stamp, [home, Path("/tmp"), Path("/var/tmp")])
    foreign = [p for p in written if not any(Path(p).is_relative_to(o) for o in own)
               and Path(p).exists() and Path(p).lstat().st_uid == student.uid]
    # The folders above svclab's own change when those are made.
    parents = {str(home), str(home / ".local"), str(home / ".local" / "state"), str(home / ".cache")}
    assert [p for p in foreign if p not in parents] == []
    state = home / ".local" / "state" / "svclab"
    assert (state / "clusters" / CLUSTER / "kubeconfig").stat().st_mode & 0o077 == 0
    assert not (home / ".kube").exists()


def _network_subnet(name: str = NETWORK) -> str:
    out = subprocess.run(["docker", "network", "inspect", name, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"],
                         capture_output=True, text=True, check=True).stdout
    return next(s for s in out.split() if ":" not in s)


def test_a_lab_passes_without_a_route_to_the_cluster_network(student):
    student.svclab("cluster.up", "--name", CLUSTER, "--quiet")
    subnet = _network_subnet()
    state = json.loads(student.svclab("cluster.status", "--name", CLUSTER, "--json").stdout)
    node = next(n for n in state["nodes"] if n.endswith("worker"))
    node_ip = json.loads(subprocess.run(["docker", "inspect", node], capture_output=True, text=True,
                                        check=True).stdout)[0]["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    url = f"http://{node_ip}:10256/healthz"   # kube-proxy's health port on the node: it answers anyone
    rule = ["OUTPUT", "-m", "owner", "--uid-owner", str(student.uid), "-d", subnet, "-m", "comment",
            "--comment", CUT_COMMENT, "-j", "REJECT"]
    before = student.run("curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url, check=False)
    assert before.returncode == 0 and before.stdout.isdigit(), before.stdout + before.stderr
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        cut = student.run("curl", "-sS", "-m", "3", url, check=False)
        assert cut.returncode != 0 and ("Couldn't connect" in cut.stderr or "refused" in cut.stderr), cut.stderr
        # The same request from another user still goes through: the cut is this user's alone.
        assert subprocess.run(["curl", "-sS", "-m", "3", url], capture_output=True).returncode == 0

        lab = student.svclab("lab.loadbalancer", "--name", CLUSTER, "--json", "-", "--quiet", check=False)
        assert lab.returncode == 0, lab.stdout[-2000:] + lab.stderr[-3000:]
        results = json.loads(lab.stdout)["results"]
        outside = [r for r in results if r["path"].startswith("outside")]
        assert outside and all(r["passed"] for r in results)
        counted = subprocess.run(["iptables", "-L", "OUTPUT", "-v", "-n", "-x"], capture_output=True, text=True,
                                 check=True).stdout
        line = next(line for line in counted.splitlines() if CUT_COMMENT in line)
        assert int(line.split()[0]) >= 1   # the filter saw (and rejected) the direct request above
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)
