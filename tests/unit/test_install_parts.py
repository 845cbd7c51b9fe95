"""What `cluster.up` installs, rendered without a cluster, and how its concurrent installs stop."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from svclab import ingress, lifecycle
from svclab.config import Settings, load_settings, pins
from svclab.errors import UsageError
from svclab.kube import cancel_waits, wait_until
from svclab.mirror import mirror_path
from svclab.providers.metallb import MetalLB


@pytest.fixture(autouse=True)
def _waits_run_again():
    """A cancelled _together leaves waits cancelled for the rest of the process (it is about to
    exit); later tests need them back."""
    yield
    cancel_waits(False)


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
    """Ctrl-C can arrive while ThreadPoolExecutor.submit waits for its new thread to run: the
    waits already started must still be cancelled, not left to run out their deadline."""
    import concurrent.futures

    real_submit = concurrent.futures.ThreadPoolExecutor.submit
    calls = []

    def submit(self, fn, *args, **kwargs):
        calls.append(fn)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", submit)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        lifecycle._together(
            lambda: wait_until("something that never happens", lambda: False, timeout=60, interval=0.05),
            lambda: None)
    assert time.monotonic() - started < 5
    assert threading.active_count() == 1


def test_join_threads_waits_for_a_thread_nobody_holds():
    """The undo of the outside client finds its starter thread by name, even when the signal
    landed before the executor recorded the thread."""
    finished = []

    def work():
        time.sleep(0.2)
        finished.append(True)

    threading.Thread(target=work, name=f"{lifecycle.CLIENT_STARTER}_0").start()
    lifecycle._join_threads(lifecycle.CLIENT_STARTER)
    assert finished == [True]


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
    from kubernetes.client.exceptions import ApiException

    class Core:
        def __init__(self, present):
            self.present = present

        def read_namespaced_secret(self, name, namespace):
            if not self.present:
                raise ApiException(status=404)

    class Kube:
        def __init__(self, present):
            self.core = Core(present)

    metallb = MetalLB()
    assert metallb._has_memberlist_secret(Kube(True)) is True
    assert metallb._has_memberlist_secret(Kube(False)) is False
    one, two = metallb.memberlist_secret(), metallb.memberlist_secret()
    assert one["metadata"] == {"name": "memberlist", "namespace": "metallb-system"}
    assert len(one["stringData"]["secretkey"]) >= 128
    assert one["stringData"]["secretkey"] != two["stringData"]["secretkey"]
