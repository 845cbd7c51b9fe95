"""The manifest renderer: placeholders filled from the pins, mistakes refused in one line, and
the named patches for upstream manifests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from svclab import render, resources
from svclab.config import agnhost_image, pins
from svclab.errors import UsageError
from svclab.placement import CONTROL_PLANE


def _templates():
    """Every template svclab ships: manifests/*.yaml and each lab's manifests (not its lab.yaml)."""
    found = [(f"manifests/{f.name}", f) for f in resources.manifests_dir().iterdir() if f.name.endswith(".yaml")]
    for lab in resources.labs_dir().iterdir():
        if lab.is_dir() and (lab / "lab.yaml").is_file():
            found += [(f"labs/{lab.name}/{f.name}", f) for f in lab.iterdir()
                      if f.name.endswith(".yaml") and f.name != "lab.yaml"]
    return sorted(found, key=lambda item: item[0])


def test_context_has_every_pinned_image_and_the_namespace():
    ctx = render.context(namespace="svclab-gateway")
    assert ctx == {"AGNHOST_IMAGE": agnhost_image(), "TRAEFIK_IMAGE": pins()["traefik"]["image"],
                   "KUBE_VIP_IMAGE": pins()["kube_vip"]["image"], "NAMESPACE": "svclab-gateway"}
    assert "NAMESPACE" not in render.context()
    assert render.context(POOL="10.0.0.0/28")["POOL"] == "10.0.0.0/28"
    with pytest.raises(ValueError, match="capitals"):
        render.context(pool="x")


def test_every_placeholder_is_filled():
    text = "a: ${AGNHOST_IMAGE}\nt: ${TRAEFIK_IMAGE}\nk: ${KUBE_VIP_IMAGE}\nn: ${NAMESPACE}/traefik\n"
    out = render.render_text(text, render.context(namespace="ns1"), source="x.yaml")
    assert yaml.safe_load(out) == {"a": agnhost_image(), "t": pins()["traefik"]["image"],
                                   "k": pins()["kube_vip"]["image"], "n": "ns1/traefik"}


def test_double_dollar_is_a_literal_dollar():
    text = 'command: [sh, -c, "echo $$HOSTNAME $${NAMESPACE} costs 5$$"]'
    assert render.render_text(text, {"NAMESPACE": "n"}, source="x.yaml") == \
        'command: [sh, -c, "echo $HOSTNAME ${NAMESPACE} costs 5$"]'


def test_unknown_placeholder_is_refused_in_one_line_naming_file_line_and_name():
    with pytest.raises(UsageError) as e:
        render.render_text("a: 1\nimage: ${AGNHOST_IMAGE}\nns: ${NAMESAPCE}\n",
                           render.context(namespace="n"), source="labs/x/y.yaml")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("labs/x/y.yaml: unknown placeholder ${NAMESAPCE} (line 3): known placeholders are ")
    for known in ("${AGNHOST_IMAGE}", "${KUBE_VIP_IMAGE}", "${NAMESPACE}", "${TRAEFIK_IMAGE}"):
        assert known in message
    assert e.value.exit_code == 2


def test_namespace_is_unknown_when_the_run_has_none():
    with pytest.raises(UsageError, match=r"^manifests/m.yaml: unknown placeholder \$\{NAMESPACE\} \(line 1\)"):
        render.render_text("namespace: ${NAMESPACE}", render.context(), source="manifests/m.yaml")


@pytest.mark.parametrize("text, shown", [
    ("echo $HOME", "$HOME"),
    ("a: ${lower}", "${lower}"),
    ("a: ${UNCLOSED", "${UNCLOSED"),
    ("cost: 5$", "$"),
])
def test_a_dollar_that_starts_no_placeholder_is_refused(text, shown):
    with pytest.raises(UsageError) as e:
        render.render_text(text, {"NAMESPACE": "n"}, source="f.yaml")
    assert str(e.value).startswith(f"f.yaml: unknown placeholder {shown} (line 1, not a ${{NAME}} placeholder)")
    assert "write $$ for a literal $" in str(e.value)


def test_every_mistake_in_a_file_is_listed_at_once():
    with pytest.raises(UsageError, match=r"unknown placeholders \$\{A\} \(line 1\), \$\{B\} \(line 2\)"):
        render.render_text("${A}\n${B}\n", {}, source="f.yaml")


@pytest.mark.parametrize("source, file", _templates(), ids=[s for s, _ in _templates()])
def test_every_shipped_template_renders_with_the_standard_context(source, file):
    text = render.render_file(file, render.context(namespace="svclab-test"), source=source)
    assert "${" not in text
    assert all(isinstance(doc, dict) for doc in yaml.safe_load_all(text) if doc)


def test_the_shipped_templates_are_the_ones_svclab_applies():
    names = {source for source, _ in _templates()}
    assert {"manifests/client.yaml", "manifests/ingress-traefik.yaml", "manifests/kube-vip.yaml",
            "manifests/echo-spread.yaml", "labs/gateway/traefik.yaml"} <= names


def test_manifest_reads_svclabs_own_folder_and_names_it_in_errors():
    text = render.manifest("client.yaml", render.context())
    assert f"image: {agnhost_image()}" in text
    with pytest.raises(UsageError, match=r"^manifests/kube-vip.yaml: unknown placeholder \$\{KUBE_VIP_IMAGE\}"):
        render.manifest("kube-vip.yaml", {})


def _deployment(**container):
    return {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "c", **container}]}}}}


def test_patches_change_only_what_they_name():
    objects = [_deployment(imagePullPolicy="Always", readinessProbe={"initialDelaySeconds": 10, "periodSeconds": 10}),
               {"kind": "Service", "spec": {"ports": [{"port": 80}]}}]
    patched = render.patch(objects, "pull-if-not-present", "ready-within-a-second", "prefer-control-plane")
    container = patched[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["readinessProbe"] == {"initialDelaySeconds": 1, "periodSeconds": 1}
    assert patched[0]["spec"]["template"]["spec"]["tolerations"][0]["key"] == CONTROL_PLANE
    assert patched[1] == {"kind": "Service", "spec": {"ports": [{"port": 80}]}}


def test_every_patch_says_why_and_an_unknown_one_is_refused():
    assert all(p.why for p in render.PATCHES.values())
    with pytest.raises(ValueError, match="unknown manifest patch pull-always"):
        render.patch([], "pull-always")


def test_the_test_beds_templates_render_with_the_builders_values():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "testbed"))
    from builder import render_template

    config = render_template("node/etc/containerd/config.toml", PAUSE_IMAGE="registry.k8s.io/pause:3.10.1")
    assert 'sandbox_image = "registry.k8s.io/pause:3.10.1"' in config
    cni = render_template("podnet/default-cni.yaml", PODNET_IMAGE="svclab.local/podnet:abc")
    assert "image: svclab.local/podnet:abc" in cni and "${" not in cni
    with pytest.raises(UsageError, match=r"^scripts/testbed/podnet/default-cni.yaml: unknown placeholder \$\{PODNET_IMAGE\}"):
        render_template("podnet/default-cni.yaml")
