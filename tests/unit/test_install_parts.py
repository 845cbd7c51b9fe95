"""What `cluster.up` installs, rendered without a cluster, and how its concurrent installs stop."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from svclab import ingress, lifecycle
from svclab.config import Settings, load_settings, pins
from svclab.errors import UsageError
from svclab.kube import wait_until
from svclab.mirror import mirror_path
from svclab.providers.metallb import MetalLB


def test_ingress_controller_objects_live_in_their_own_namespace():
    objects = ingress.objects()
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "Service", "IngressClass", "ClusterRoleBinding"} <= kinds
    namespace = next(o for o in objects if o["kind"] == "Namespace")
    assert namespace["metadata"]["name"] == ingress.NAMESPACE != "svclab-ingress"  # not the lab's namespace
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == ingress.NAMESPACE
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == pins()["traefik"]["image"]
    assert f"--providers.kubernetesingress.ingressclass={ingress.INGRESS_CLASS}" in container["command"]
    assert next(o for o in objects if o["kind"] == "Service")["spec"]["type"] == "LoadBalancer"


def test_ingress_setting_is_validated():
    assert load_settings({"ingress": "none"}, env={}).ingress == "none"
    assert ingress.images("none") == []
    with pytest.raises(UsageError, match="unknown ingress controller 'nginx'"):
        Settings(ingress="nginx")


def test_metallb_readiness_is_asked_every_second(tmp_path):
    mirror = tmp_path / "mirror"
    text = """apiVersion: apps/v1
kind: Deployment
metadata: {name: controller, namespace: metallb-system}
spec:
  template:
    spec:
      containers:
        - name: controller
          readinessProbe: {httpGet: {path: /metrics, port: monitoring}, initialDelaySeconds: 10, periodSeconds: 10}
          livenessProbe: {httpGet: {path: /metrics, port: monitoring}, initialDelaySeconds: 10, periodSeconds: 10}
"""
    metallb = MetalLB()
    metallb.pins = {**metallb.pins, "manifest_sha256": hashlib.sha256(text.encode()).hexdigest()}
    path = mirror_path(mirror, metallb.pins["manifest_url"])
    path.parent.mkdir(parents=True)
    path.write_text(text)

    class Ctx:
        settings = Settings(mirror=mirror, cache_dir=tmp_path / "cache")

    container = metallb.manifest(Ctx())[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["initialDelaySeconds"] == 1
    assert container["readinessProbe"]["periodSeconds"] == 1
    assert container["livenessProbe"]["initialDelaySeconds"] == 10  # liveness is left as upstream has it


def test_together_raises_the_first_failure_and_cancels_the_other_waits():
    started = time.monotonic()

    def slow():
        wait_until("something that never happens", lambda: False, timeout=60, interval=0.05)

    def broken():
        raise RuntimeError("provider failed")

    with pytest.raises(RuntimeError, match="provider failed"):
        lifecycle._together(slow, broken)
    assert time.monotonic() - started < 5
    assert threading.active_count() == 1


def test_together_runs_everything_when_all_succeed():
    done = []
    lifecycle._together(lambda: done.append(1), lambda: done.append(2))
    assert sorted(done) == [1, 2]


def test_together_cancels_the_started_waits_when_ctrl_c_lands_during_a_submit(monkeypatch):
    """Ctrl-C can arrive while the second thread is being started: the wait already started in
    the first must still be cancelled, not left to run out its deadline."""
    from svclab.cancel import Workers

    real_submit = Workers.submit
    calls = []

    def submit(self, fn, *args, **kwargs):
        calls.append(fn)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(Workers, "submit", submit)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        lifecycle._together(
            lambda: wait_until("something that never happens", lambda: False, timeout=60, interval=0.05),
            lambda: None)
    assert time.monotonic() - started < 5
    assert threading.active_count() == 1


def test_own_deployments_tolerate_and_prefer_the_control_plane_once():
    from svclab.placement import CONTROL_PLANE, prefer_control_plane

    objects = ingress.objects()
    prefer_control_plane(objects)   # a second pass adds nothing
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert [t["key"] for t in pod["tolerations"]] == [CONTROL_PLANE]
    terms = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [term["preference"]["matchExpressions"][0]["key"] for term in terms] == [CONTROL_PLANE]
    service = next(o for o in objects if o["kind"] == "Service")
    assert "tolerations" not in str(service)


def test_metallb_memberlist_secret_is_made_only_when_missing():
    class Kube:
        def __init__(self, present):
            self.present = present

        def get(self, api_version, kind, name, namespace=None):
            assert (api_version, kind, name, namespace) == ("v1", "Secret", "memberlist", "metallb-system")
            return {"metadata": {"name": name}} if self.present else None

    metallb = MetalLB()
    assert metallb._has_memberlist_secret(Kube(True)) is True
    assert metallb._has_memberlist_secret(Kube(False)) is False
    one, two = metallb.memberlist_secret(), metallb.memberlist_secret()
    assert one["metadata"] == {"name": "memberlist", "namespace": "metallb-system"}
    assert len(one["stringData"]["secretkey"]) >= 128
    assert one["stringData"]["secretkey"] != two["stringData"]["secretkey"]


class _RecordingKube:
    """Records what MetalLB's install applies and waits for; REJECT_POOL times the webhook says no."""

    def __init__(self, reject_pool: int):
        self.reject_pool = reject_pool
        self.calls: list[str] = []

    def apply(self, objects):
        kinds = sorted({o["kind"] for o in objects})
        if "IPAddressPool" in kinds and self.reject_pool:
            self.reject_pool -= 1
            self.calls.append("pool rejected")
            raise RuntimeError('failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io": no endpoints available')
        self.calls.append("apply " + ",".join(kinds))
        return objects

    def wait_deployment(self, namespace, name, timeout):
        self.calls.append(f"wait deployment {name}")

    def wait_daemonset(self, namespace, name, timeout):
        self.calls.append(f"wait daemonset {name}")

    def broken_pod_reason(self, namespace, since):
        return None


def _install_metallb(kube, monkeypatch):
    from svclab.network import Pool

    manifest = [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller"}},
                {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                 "metadata": {"name": "metallb-webhook-configuration"}}]
    metallb = MetalLB()
    monkeypatch.setattr(metallb, "manifest", lambda ctx: manifest)
    monkeypatch.setattr(metallb, "_has_memberlist_secret", lambda kube: True)
    monkeypatch.setattr(metallb, "pool_loaded", lambda kube, pool: kube.calls.append("pool loaded") or True)

    class Ctx:
        settings = Settings(wait_timeout=5)
        pool = Pool("svclab", "172.18.0.0/16", "172.18.255.238", "172.18.255.239", "172.18.255.254")

        def step(self, message):
            pass

    Ctx.kube = kube
    metallb.install(Ctx())
    return kube.calls


def test_metallb_pool_goes_in_before_its_webhook_exists(monkeypatch):
    calls = _install_metallb(_RecordingKube(reject_pool=0), monkeypatch)
    assert calls == ["apply CustomResourceDefinition,Namespace", "apply IPAddressPool,L2Advertisement",
                     "apply Deployment,ValidatingWebhookConfiguration", "pool loaded", "wait daemonset speaker"]


def test_metallb_pool_waits_for_a_webhook_that_is_not_serving_yet(monkeypatch):
    calls = _install_metallb(_RecordingKube(reject_pool=2), monkeypatch)
    assert calls == ["apply CustomResourceDefinition,Namespace", "pool rejected",
                     "apply Deployment,ValidatingWebhookConfiguration", "pool rejected",
                     "apply IPAddressPool,L2Advertisement", "pool loaded", "wait daemonset speaker"]


def test_metallb_pool_counts_as_loaded_once_its_status_covers_every_address():
    from svclab.network import Pool

    pool = Pool("svclab", "172.18.0.0/16", "172.18.255.238", "172.18.255.239", "172.18.255.254")
    pools = iter([None, {}, {"status": {"availableIPv4": 15, "assignedIPv4": 1, "availableIPv6": 0}}])

    class Kube:
        def get(self, api_version, kind, name, namespace=None):
            assert (api_version, kind, name, namespace) == ("metallb.io/v1beta1", "IPAddressPool", "svclab", "metallb-system")
            return next(pools)

    assert MetalLB().pool_loaded(Kube(), pool) is False   # not created yet
    assert MetalLB().pool_loaded(Kube(), pool) is False   # no status yet
    assert MetalLB().pool_loaded(Kube(), pool) is True
