import json

import pytest

from svclab.doctor import FAIL, OK, WARN, judge, kind_version, kubectl_version


def kubectl_json(version: str) -> str:
    return json.dumps({"clientVersion": {"major": "1", "minor": version.split(".")[1], "gitVersion": version,
                                         "platform": "linux/amd64"}, "kustomizeVersion": "v5.7.1"}, indent=2)


HEALTHY = {
    "docker_version": "20.10.24", "cgroup_version": "1", "default_runtime": "svclab-runc",
    "kind": ("/x/kind", "kind v0.30.0 go1.24.6 linux/amd64"), "kubectl": ("/x/kubectl", kubectl_json("v1.34.5")),
    "max_user_watches": 524288, "max_user_instances": 512, "cap_sys_resource": False,
    "network_subnets": ["172.22.0.0/16"], "routes": ["172.22.0.0/16 dev br-abc proto kernel scope link"],
    "containers": [], "os": "linux", "arch": "amd64", "go": False, "tools_dir": "~/.local/share/svclab/bin",
    "network": "svclab",
}
PINS = {"kind_pin": "v0.30.0", "kube_pin": "v1.34.5"}


def statuses(facts, **kw):
    return {f.check: f.status for f in judge(facts, **kw)}


def by_check(facts, **kw):
    return {f.check: f for f in judge(facts, **{**PINS, **kw})}


def test_healthy_machine():
    result = statuses(HEALTHY)
    assert set(result.values()) == {OK}


def test_pins_default_to_pins_toml():
    # judge() without pins reads svclab/pins.toml: the healthy machine above matches it.
    assert statuses(HEALTHY) == statuses(HEALTHY, **PINS)


def test_each_problem_has_a_fix():
    facts = HEALTHY | {"docker_error": "connection refused", "kind": None, "max_user_watches": 8192,
                       "default_runtime": "runc",
                       "routes": ["172.22.0.0/16 dev br-abc", "172.22.5.0/24 via 10.8.0.1 dev tun0"],
                       "containers": [("cpk", "registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.6")],
                       "kubectl": ("/usr/bin/kubectl", kubectl_json("v1.30.1"))}
    findings = judge(facts)
    found = {f.check: f for f in findings}
    assert found["docker"].status == FAIL
    assert found["kind"].status == FAIL
    assert found["inotify max_user_watches"].status == WARN
    assert found["capabilities"].status == FAIL
    assert "tun0" in found["subnet clash"].detail
    assert found["other load balancers"].status == WARN
    assert found["kubectl"].status == WARN
    assert all(f.fix for f in findings if f.status != OK)


def test_fixes_name_only_what_an_installed_svclab_has():
    """No fix points at a checkout's scripts or tasks, except the one marked as such."""
    facts = HEALTHY | {"docker_error": "connection refused", "kind": None, "kubectl": None, "default_runtime": "runc",
                       "node_image": ("svclab.local/kind-node:v1.34.5", False), "max_user_instances": 128,
                       "routes": ["172.22.5.0/24 via 10.8.0.1 dev tun0"]}
    findings = judge(facts, **PINS)
    assert len([f for f in findings if f.status != OK]) >= 7
    for f in findings:
        text = f.fix.replace("in a checkout: `invoke testbed.build`", "")
        assert "scripts/" not in text and "invoke" not in text and "host-setup" not in text, f


def test_cgroup_v1_with_kubernetes_135_fails():
    assert statuses(HEALTHY, kube_minor=35)["cgroups"] == FAIL


# ------------------------------------------------------------------ kind's version

def test_kind_at_the_pinned_version_is_ok():
    kind = by_check(HEALTHY)["kind"]
    assert kind.status == OK and kind.detail == "v0.30.0 (/x/kind)" and kind.fix == ""


def test_kind_at_another_version_warns_with_the_pinned_one():
    kind = by_check(HEALTHY | {"kind": ("/usr/local/bin/kind", "kind v0.29.0 go1.24.2 linux/amd64")})["kind"]
    assert kind.status == WARN
    assert "v0.29.0" in kind.detail and "v0.30.0" in kind.detail
    assert kind.fix == ("install kind v0.30.0: `mkdir -p ~/.local/share/svclab/bin && curl -fLo "
                        "~/.local/share/svclab/bin/kind https://kind.sigs.k8s.io/dl/v0.30.0/kind-linux-amd64 && "
                        "chmod +x ~/.local/share/svclab/bin/kind` (svclab looks in ~/.local/share/svclab/bin before PATH)")
    assert "/usr/local/bin" not in kind.fix


def test_kind_prerelease_is_another_version():
    kind = by_check(HEALTHY | {"kind": ("/x/kind", "kind v0.30.0-alpha.1+abc go1.25 linux/amd64")})["kind"]
    assert kind.status == WARN and "v0.30.0-alpha.1" in kind.detail


@pytest.mark.parametrize("output", ["", "kind version unknown", "Usage: kind [command]"])
def test_kind_version_unparseable_warns(output):
    kind = by_check(HEALTHY | {"kind": ("/x/kind", output)})["kind"]
    assert kind.status == WARN and kind.detail.startswith("version unknown")
    assert "install kind v0.30.0" in kind.fix


def test_kind_version_parsing():
    assert kind_version("kind v0.30.0 go1.24.6 linux/amd64") == "v0.30.0"
    assert kind_version("kind v0.31.0-alpha go1.25 darwin/arm64") == "v0.31.0-alpha"
    assert kind_version("kind go1.24") is None


# ------------------------------------------------------------------ kubectl's version skew

@pytest.mark.parametrize("version, status", [
    ("v1.34.5", OK), ("v1.34.0", OK), ("v1.33.2", OK), ("v1.35.1", OK),
    ("v1.32.4", WARN), ("v1.36.0", WARN), ("v2.34.0", WARN),
])
def test_kubectl_within_one_minor_of_the_pinned_kubernetes(version, status):
    kubectl = by_check(HEALTHY | {"kubectl": ("/usr/bin/kubectl", kubectl_json(version))})["kubectl"]
    assert kubectl.status == status, kubectl
    if status == WARN:
        assert "v1.34" in kubectl.detail and version in kubectl.detail
        assert kubectl.fix.startswith("install kubectl v1.34.5: ")
        assert "https://dl.k8s.io/release/v1.34.5/bin/linux/amd64/kubectl" in kubectl.fix
        assert "/usr/bin" not in kubectl.fix   # never "use the one it found"


@pytest.mark.parametrize("output", ["", "Client Version: v1.34.5", "{}", '{"clientVersion": {"gitVersion": "dev"}}', "[1]"])
def test_kubectl_version_unparseable_warns(output):
    kubectl = by_check(HEALTHY | {"kubectl": ("/x/kubectl", output)})["kubectl"]
    assert kubectl.status == WARN and kubectl.detail.startswith("version unknown")
    assert "install kubectl v1.34.5" in kubectl.fix


def test_kubectl_version_parsing():
    assert kubectl_version(kubectl_json("v1.34.5")) == "v1.34.5"
    assert kubectl_version('{"clientVersion": {"gitVersion": "v1.32.4-dispatcher"}}') == "v1.32.4-dispatcher"
    assert kubectl_version("not json") is None


# ------------------------------------------------------------------ missing tools: the install command for this OS

def test_missing_tools_on_macos_use_brew():
    found = by_check(HEALTHY | {"kind": None, "kubectl": None, "os": "darwin", "arch": "arm64", "go": True})
    assert found["kind"].status == FAIL and found["kind"].detail == "kind not found"
    assert found["kind"].fix == "install kind: `brew install kind`; in a checkout: `invoke testbed.build`"
    assert found["kubectl"].fix == "install kubectl: `brew install kubectl`; in a checkout: `invoke testbed.build`"


def test_missing_kind_with_go_uses_go_install_into_svclabs_folder():
    found = by_check(HEALTHY | {"kind": None, "go": True})
    assert found["kind"].fix == ("install kind v0.30.0: `mkdir -p ~/.local/share/svclab/bin && "
                                 "GOBIN=~/.local/share/svclab/bin go install sigs.k8s.io/kind@v0.30.0`; "
                                 "in a checkout: `invoke testbed.build`")


def test_missing_tools_without_go_download_the_pinned_release():
    found = by_check(HEALTHY | {"kind": None, "kubectl": None, "arch": "arm64", "tools_dir": "/opt/svclab/bin"})
    assert ("`mkdir -p /opt/svclab/bin && curl -fLo /opt/svclab/bin/kind "
            "https://kind.sigs.k8s.io/dl/v0.30.0/kind-linux-arm64 && chmod +x /opt/svclab/bin/kind`") in found["kind"].fix
    assert "https://dl.k8s.io/release/v1.34.5/bin/linux/arm64/kubectl" in found["kubectl"].fix
    assert "svclab looks in /opt/svclab/bin before PATH" in found["kubectl"].fix
    assert found["kubectl"].fix.startswith("install kubectl v1.34.5: ")


def test_kubectl_is_never_installed_with_go():
    # `go install` cannot build kubectl (its module has replace directives): the release is downloaded.
    found = by_check(HEALTHY | {"kubectl": None, "go": True})
    assert "go install" not in found["kubectl"].fix and "dl.k8s.io" in found["kubectl"].fix


def test_wrong_version_on_macos_gets_the_pinned_darwin_build_not_brew():
    found = by_check(HEALTHY | {"os": "darwin", "arch": "arm64",
                                "kind": ("/opt/homebrew/bin/kind", "kind v0.31.0 go1.25 darwin/arm64")})
    assert found["kind"].status == WARN
    assert "https://kind.sigs.k8s.io/dl/v0.30.0/kind-darwin-arm64" in found["kind"].fix
    assert "brew" not in found["kind"].fix and "/opt/homebrew" not in found["kind"].fix


# ------------------------------------------------------------------ other fixes

@pytest.mark.parametrize("facts, wanted", [
    ({"docker_error": "Error while fetching server API version: connection refused"}, "`sudo systemctl start docker`"),
    ({"docker_error": "connection refused", "os": "darwin"}, "`open -a Docker`"),
    ({"docker_error": "connection refused", "docker_host": "tcp://10.0.0.5:2376"}, "`unset DOCKER_HOST`"),
    ({"docker_error": "('Connection aborted.', PermissionError(13, 'Permission denied'))"}, "`sudo usermod -aG docker $USER`"),
])
def test_docker_fix_fits_the_machine(facts, wanted):
    docker = by_check(HEALTHY | facts)["docker"]
    assert docker.status == FAIL and wanted in docker.fix


def test_node_image_fixes():
    testbed = by_check(HEALTHY | {"node_image": ("svclab.local/kind-node:v1.34.5", False)})["node image"]
    assert testbed.status == FAIL
    assert testbed.fix == ("unset SVCLAB_NODE_IMAGE to use kind's default, or load it from a bundle: "
                           "`svclab images.load --archive svclab-bundle.tar` (in a checkout: `invoke testbed.build`)")
    other = by_check(HEALTHY | {"node_image": ("kindest/node:v1.34.0", False)})["node image"]
    assert other.status == WARN
    assert other.fix == "`docker pull kindest/node:v1.34.0` now, or unset SVCLAB_NODE_IMAGE to use kind's default"


def test_inotify_fix_is_the_command_and_how_to_keep_it():
    row = by_check(HEALTHY | {"max_user_instances": 128})["inotify max_user_instances"]
    assert row.status == WARN
    assert "`sudo sysctl -w fs.inotify.max_user_instances=512`" in row.fix and "/etc/sysctl.d/" in row.fix
