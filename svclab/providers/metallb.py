"""MetalLB in L2 mode: the pinned upstream manifest, then an IPAddressPool holding the addresses
svclab carved from the cluster's docker network and an L2Advertisement for it. On svclab's own
clusters it comes with `up`; on a cluster svclab did not make, only with `--install metallb`, for
one run (`install_refusal` says where it cannot, `remove_from_target` takes it away again)."""

from __future__ import annotations

import base64
import secrets
import time

from kubernetes.dynamic.exceptions import DynamicApiError

from .. import render
from ..config import pins
from ..errors import SvclabError
from ..kube import MANAGED_SELECTOR, api_error_message, is_managed, load_manifests, wait_until
from ..mirror import fetch

__all__ = ["MetalLB", "NAMESPACE", "POOL_NAME", "install_refusal", "remove_from_target"]

NAMESPACE = "metallb-system"
POOL_NAME = "svclab"
MEMBERLIST_SECRET = "memberlist"   # the name the upstream manifest gives the speakers
# What the upstream manifest makes outside its namespace (the webhook configuration apart), and
# how its names are told apart from others' of the kind.
WEBHOOK = ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
           lambda name: name == "metallb-webhook-configuration")
CLUSTER_SCOPED = (
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", lambda name: name.startswith(f"{NAMESPACE}:")),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", lambda name: name.startswith(f"{NAMESPACE}:")),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", lambda name: name.endswith(".metallb.io")),
)


class MetalLB:
    name = "metallb"
    expects_address = True
    one_name_at_a_time = False

    def __init__(self) -> None:
        self.pins = pins()["metallb"]

    def images(self) -> list[str]:
        return [self.pins["controller_image"], self.pins["speaker_image"]]

    def describe(self) -> str:
        return f"MetalLB {self.pins['version']} (L2 mode)"

    def holder(self, kube, namespace: str, service: str) -> str | None:
        """The node answering ARP for the Service's address, from MetalLB's ServiceL2Status objects."""
        statuses = kube.list("metallb.io/v1beta1", "ServiceL2Status", NAMESPACE)
        mine = [item for item in statuses
                if (item.get("status") or {}).get("serviceName") == service
                and (item.get("status") or {}).get("serviceNamespace") == namespace]
        # A speaker that just took over writes a new status; a failed one cannot remove its old one.
        mine.sort(key=lambda item: item["metadata"]["creationTimestamp"], reverse=True)
        return mine[0]["status"].get("node") if mine else None

    def manifest(self, ctx) -> list[dict]:
        s = ctx.settings
        text = fetch(self.pins["manifest_url"], self.pins["manifest_sha256"], cache_dir=s.cache_dir, mirror=s.mirror)
        return render.patch(load_manifests(text.decode()), "ready-within-a-second", "prefer-control-plane")

    def memberlist_secret(self) -> dict:
        """The key the speakers share for their memberlist traffic. The controller makes one when
        it is missing, but only once it runs: a speaker scheduled before then waits for the
        missing volume with a growing back-off, seconds after everything else is ready."""
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": MEMBERLIST_SECRET, "namespace": NAMESPACE},
                "stringData": {"secretkey": base64.b64encode(secrets.token_bytes(128)).decode()}}

    def _has_memberlist_secret(self, kube) -> bool:
        return kube.get("v1", "Secret", MEMBERLIST_SECRET, NAMESPACE) is not None

    def pool_objects(self, pool) -> list[dict]:
        return [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": POOL_NAME, "namespace": NAMESPACE},
             "spec": {"addresses": [pool.range], "autoAssign": True}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
             "metadata": {"name": POOL_NAME, "namespace": NAMESPACE},
             "spec": {"ipAddressPools": [POOL_NAME]}},
        ]

    def pool_loaded(self, kube, pool) -> bool:
        """Whether MetalLB's controller has taken the pool in: it then counts every address of it
        as either available or assigned in the pool's status."""
        found = kube.get("metallb.io/v1beta1", "IPAddressPool", POOL_NAME, NAMESPACE) or {}
        status = found.get("status") or {}
        return status.get("availableIPv4", 0) + status.get("assignedIPv4", 0) == len(pool.addresses())

    def install(self, ctx) -> None:
        kube, timeout = ctx.kube, ctx.settings.wait_timeout
        ctx.step(f"applying {self.describe()}")
        # Made once: a new key on every `up` would split running speakers from restarted ones.
        secret = [] if self._has_memberlist_secret(kube) else [self.memberlist_secret()]
        objects = [*self.manifest(ctx), *secret]
        first = [obj for obj in objects if obj["kind"] in ("CustomResourceDefinition", "Namespace")]
        kube.apply(first)
        # The pool is tried once before the rest of the manifest: on a new cluster MetalLB's
        # validating webhook does not exist yet, so the pool need not wait for the controller to
        # serve it (the controller's own acceptance of the pool is waited for below instead).
        # Where the webhook exists, it answers only once its certificate and endpoints are in
        # place, so the pool is retried after the rest, which may be what brings the webhook up.
        ctx.step(f"configuring MetalLB pool {ctx.pool.range}")
        pool_objects = self.pool_objects(ctx.pool)

        def applied():
            try:
                return kube.apply(pool_objects)
            except Exception as e:  # noqa: BLE001 - retried until the deadline, then reported
                message = api_error_message(e)
                if "webhook" in message or "connection refused" in message or "no endpoints" in message:
                    return None
                raise SvclabError(f"MetalLB rejected its address pool: {message}") from None

        pool_applied = applied()
        since = time.time()   # the controller's pod is new from here on (for the crash check below)
        kube.apply([obj for obj in objects if obj not in first])
        if pool_applied is None:
            wait_until("MetalLB's webhook to accept the address pool", applied, timeout=timeout, interval=0.25)
        # Waited for instead of the controller's readiness probe, which passes seconds later and
        # says less: a controller that counts the pool's addresses assigns them.
        wait_until(f"MetalLB's controller to load pool {POOL_NAME}", lambda: self.pool_loaded(kube, ctx.pool),
                   timeout=timeout, interval=0.25, fail=lambda: kube.broken_pod_reason(NAMESPACE, since))
        kube.wait_daemonset(NAMESPACE, "speaker", timeout=timeout)


def install_refusal(load_balancer: str, detail: str, namespace_owner: str | None, docker_network: str | None) -> str:
    """Why `--install metallb` cannot go on a cluster svclab did not make ('' when it can):
    LOAD_BALANCER is what detection found implementing LoadBalancer Services, NAMESPACE_OWNER
    who made a namespace metallb-system there (None: there is none; 'svclab': a run of svclab's
    that was killed), DOCKER_NETWORK the docker network of the nodes, where the pool is carved."""
    if load_balancer != "none":
        return f"--install metallb: this cluster already has {detail or load_balancer} for LoadBalancer Services"
    if namespace_owner not in (None, "svclab"):
        return f"--install metallb: namespace {NAMESPACE} exists already and is not svclab's"
    if not docker_network:
        return ("--install metallb carves its addresses from the nodes' docker network, "
                "and these nodes are not containers of this machine's Docker")
    return ""


def remove_from_target(kube, *, timeout: float) -> list[str]:
    """What `--install metallb` made on a cluster svclab did not make, each object only where it
    carries svclab's label: the webhook configuration first (nothing then checks the deletes),
    the namespace, then the cluster-scoped rest, waiting until the CRDs are gone. Returns
    'Kind name' of each one removed."""
    removed = _delete_ours(kube, *WEBHOOK)
    namespace = kube.get("v1", "Namespace", NAMESPACE)
    if namespace is not None and is_managed(namespace):
        kube.delete_namespace(NAMESPACE, timeout=timeout)
        removed.append(f"Namespace {NAMESPACE}")
    for api_version, kind, is_metallbs in CLUSTER_SCOPED:
        removed += _delete_ours(kube, api_version, kind, is_metallbs)
    crds = [line.split(" ", 1)[1] for line in removed if line.startswith("CustomResourceDefinition ")]
    wait_until("MetalLB's CRDs to be deleted",
               lambda: all(kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) is None for name in crds),
               timeout=timeout)
    return removed


def _delete_ours(kube, api_version: str, kind: str, is_metallbs) -> list[str]:
    try:
        listed = kube.list(api_version, kind, label_selector=MANAGED_SELECTOR)
    except DynamicApiError as e:
        if e.status == 403:   # a user who may not list them cannot have had svclab make them
            return []
        raise
    found = [obj for obj in listed if is_metallbs(obj["metadata"]["name"])]
    kube.delete(found)
    return [f"{kind} {obj['metadata']['name']}" for obj in found]
