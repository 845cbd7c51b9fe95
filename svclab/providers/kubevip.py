"""kube-vip in ARP mode for Services, with kube-vip-cloud-provider handing out addresses from the
pool svclab carved. kube-vip's own DaemonSet and RBAC are svclab's manifest; the cloud provider
is the pinned upstream manifest, with its image pull policy relaxed for preloaded images (a named
patch in svclab.render)."""

from __future__ import annotations

from .. import render
from ..config import pins
from ..kube import load_manifests
from ..mirror import fetch

__all__ = ["KubeVip"]

class KubeVip:
    name = "kube-vip"
    expects_address = True
    # Each kube-vip process elects a Service's announcer under a lock keyed by the Service's name
    # alone, held for as long as that Service lives: a second Service of the same name in another
    # namespace gets no announcer, hence no address, until the first one is deleted.
    one_name_at_a_time = True

    def __init__(self) -> None:
        self.pins = pins()["kube_vip"]

    def images(self) -> list[str]:
        return [self.pins["image"], self.pins["cloud_provider_image"]]

    def describe(self) -> str:
        return f"kube-vip {self.pins['version']} (ARP, per-Service election) + cloud provider {self.pins['cloud_provider_version']}"

    def holder(self, kube, namespace: str, service: str) -> str | None:
        """The node holding the Service's virtual IP: the winner of its leader election."""
        lease = kube.get("coordination.k8s.io/v1", "Lease", f"kubevip-{service}", namespace)
        return (lease.get("spec") or {}).get("holderIdentity") if lease else None

    def cloud_provider_objects(self, ctx) -> list[dict]:
        s = ctx.settings
        text = fetch(self.pins["cloud_provider_manifest_url"], self.pins["cloud_provider_manifest_sha256"],
                     cache_dir=s.cache_dir, mirror=s.mirror)
        return render.patch(load_manifests(text.decode()), "pull-if-not-present", "prefer-control-plane")

    def install(self, ctx) -> None:
        kube, timeout = ctx.kube, ctx.settings.wait_timeout
        ctx.step(f"applying {self.describe()}")
        kube.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubevip", "namespace": "kube-system"},
                     "data": {"range-global": ctx.pool.range}}])
        kube.apply(self.cloud_provider_objects(ctx))
        ours = render.manifest("kube-vip.yaml", render.context())
        kube.apply(load_manifests(ours))
        kube.wait_deployment("kube-system", "kube-vip-cloud-provider", timeout=timeout)
        kube.wait_daemonset("kube-system", "kube-vip", timeout=timeout)
