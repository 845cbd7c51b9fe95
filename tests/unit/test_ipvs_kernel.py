"""kube-proxy's ipvs mode needs IPVS in the kernel of Docker's engine: how svclab looks (from a
short-lived container), how it judges what it found, and that `up` refuses a new cluster before
making anything while reusing an existing one unasked."""

import os
import subprocess

import pytest
from docker.errors import APIError, ImageNotFound

from svclab import ipvs, lifecycle
from svclab.cluster import ClusterRecord
from svclab.config import Settings, agnhost_image, load_settings
from svclab.errors import EXIT_PREREQUISITE, PrerequisiteError
from svclab.ui import UI

LOADED = {"kernel": "6.8.0-52-generic", "present": ["/proc/net/ip_vs", "/sys/module/ip_vs"], "error": None}
MISSING = {"kernel": "6.18.44", "present": [], "error": None}
UNKNOWN = {"kernel": "", "present": [], "error": "no local image to look with"}


def test_the_look_script_runs_in_a_plain_shell():
    # The script uses shell builtins only; on this machine it reports this machine's kernel.
    output = subprocess.run(["/bin/sh", "-c", ipvs._LOOK_SCRIPT], capture_output=True, text=True, check=True).stdout
    found = ipvs._read_look(output)
    assert found == {"kernel": os.uname().release, "present": [p for p in ipvs.IPVS_SIGNS if os.path.exists(p)],
                     "error": None}


def test_a_garbled_answer_is_not_taken_for_absence():
    assert ipvs.has_ipvs(ipvs._read_look("exec failed\n")) is None
    assert ipvs.has_ipvs(ipvs._read_look("kernel 6.1\npresent /sys/module/ip_vs\nabsent /proc/net/ip_vs\n")) is True


def test_judgement():
    assert ipvs.has_ipvs(LOADED) is True
    assert ipvs.has_ipvs({**MISSING, "present": ["/sys/module/ip_vs"]}) is True
    assert ipvs.has_ipvs(MISSING) is False
    assert ipvs.has_ipvs(UNKNOWN) is None


def test_no_refusal_when_ipvs_is_loaded():
    assert ipvs.refusal(LOADED) is None


def test_refusal_is_one_line_with_its_fix():
    error = ipvs.refusal(MISSING, "SVCLAB_KUBE_PROXY_MODE")
    assert isinstance(error, PrerequisiteError) and error.exit_code == EXIT_PREREQUISITE == 3
    assert error.message == ("kube-proxy mode ipvs needs IPVS in the kernel of Docker's engine, which has none "
                             "(kernel 6.18.44: no /proc/net/ip_vs, no /sys/module/ip_vs)")
    assert "`sudo modprobe ip_vs`" in error.hint and "nftables or iptables" in error.hint
    assert "SVCLAB_KUBE_PROXY_MODE asked for ipvs" in error.hint
    assert "\n" not in str(error)


def test_refusal_when_svclab_could_not_look():
    error = ipvs.refusal(UNKNOWN)
    assert error.exit_code == 3 and "could not look (no local image to look with)" in error.message


class Container:
    def __init__(self, output: bytes, fail_wait: bool = False):
        self.output, self.fail_wait, self.removed = output, fail_wait, False

    def start(self):
        pass

    def wait(self, timeout=None):
        if self.fail_wait:
            raise APIError("wait failed")
        return {"StatusCode": 0}

    def logs(self, stdout=True, stderr=True):
        return self.output

    def remove(self, force=False):
        self.removed = True


class Docker:
    """Enough of docker.DockerClient for ipvs.look: local IMAGES, and the containers it made."""

    def __init__(self, images=(), output=b"kernel 6.18.44\nabsent /proc/net/ip_vs\nabsent /sys/module/ip_vs\n",
                 fail_wait=False):
        self.local, self.pulled, self.made = set(images), [], []
        self.output, self.fail_wait = output, fail_wait
        self.images, self.containers = self, self

    def get(self, image):
        if image not in self.local:
            raise ImageNotFound(image)

    def pull(self, image):
        self.pulled.append(image)
        self.local.add(image)

    def create(self, image, **kwargs):
        self.made.append((image, kwargs, Container(self.output, self.fail_wait)))
        return self.made[-1][2]


def test_look_asks_a_short_lived_container_without_network():
    dc = Docker(images=[agnhost_image()])
    assert ipvs.look(dc, Settings()) == MISSING
    image, kwargs, container = dc.made[0]
    assert image == agnhost_image() and kwargs["network_mode"] == "none" and container.removed
    assert kwargs["entrypoint"][:2] == ["/bin/sh", "-c"]


def test_look_prefers_the_node_image_and_pulls_only_when_asked():
    node = Settings(node_image="svclab.local/kind-node:v1.34.5")
    dc = Docker(images=[node.node_image, agnhost_image()])
    ipvs.look(dc, node)
    assert dc.made[0][0] == node.node_image
    bare = Docker()
    assert "no local image" in ipvs.look(bare, Settings())["error"] and not bare.made
    ipvs.look(bare, Settings(), pull=True)
    assert bare.pulled == [agnhost_image()] and bare.made[0][0] == agnhost_image()


def test_look_removes_its_container_when_docker_fails():
    dc = Docker(images=[agnhost_image()], fail_wait=True)
    found = ipvs.look(dc, Settings())
    assert found["error"] == "wait failed" and dc.made[0][2].removed


class Kind:
    def __init__(self, exists: bool):
        self._exists = exists
        self.echo = None

    def exists(self):
        return self._exists


@pytest.fixture
def up_without_a_cluster(monkeypatch, tmp_path):
    """`lifecycle.up` with Docker and kind faked; returns (settings, calls) where calls counts the
    looks at the kernel and the attempts to make anything."""
    calls = {"look": 0, "make": 0}

    def fake_look(dc, settings, pull=False):
        calls["look"] += 1
        return MISSING

    def fake_make(*args, **kwargs):
        calls["make"] += 1
        raise AssertionError("_make ran")

    monkeypatch.setattr(ipvs, "look", fake_look)
    monkeypatch.setattr(lifecycle, "_make", fake_make)
    return tmp_path / "state", calls


def test_up_refuses_a_new_ipvs_cluster_before_making_anything(monkeypatch, up_without_a_cluster):
    state, calls = up_without_a_cluster
    monkeypatch.setattr(lifecycle, "preflight", lambda settings: (Docker(), Kind(exists=False)))
    settings = load_settings({"state_dir": str(state)}, env={"SVCLAB_KUBE_PROXY_MODE": "ipvs"})
    with pytest.raises(PrerequisiteError, match="which has none") as refused:
        lifecycle.up(settings, UI(quiet=True))
    assert refused.value.exit_code == 3 and "SVCLAB_KUBE_PROXY_MODE asked for ipvs" in refused.value.hint
    assert calls == {"look": 1, "make": 0}
    assert not state.exists(), "no state folder, kubeconfig or record"


def test_up_of_a_new_cluster_in_another_mode_does_not_look(monkeypatch, up_without_a_cluster):
    state, calls = up_without_a_cluster
    monkeypatch.setattr(lifecycle, "preflight", lambda settings: (Docker(), Kind(exists=False)))
    with pytest.raises(AssertionError, match="_make ran"):
        lifecycle.up(Settings(kube_proxy_mode="nftables", state_dir=state), UI(quiet=True))
    assert calls == {"look": 0, "make": 1}


def test_up_reusing_an_ipvs_cluster_does_not_look_again(monkeypatch, up_without_a_cluster):
    state, calls = up_without_a_cluster
    settings = Settings(kube_proxy_mode="ipvs", provider="none", workers=2, state_dir=state)
    ClusterRecord(settings.cluster_name, {**lifecycle._shape(settings)}).save(settings.make_cluster_dir())
    dc = Docker()
    dc.list = lambda **kwargs: []   # no stopped nodes
    monkeypatch.setattr(lifecycle, "preflight", lambda settings: (dc, Kind(exists=True)))
    with pytest.raises(AssertionError, match="_make ran"):
        lifecycle.up(settings, UI(quiet=True))
    assert calls == {"look": 0, "make": 1}
