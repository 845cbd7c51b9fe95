"""What a cluster svclab did not make has: its load balancer, what translates Services (kube-proxy
and its mode, or a replacement), its Ingress and Gateway classes, nodes, zones and distribution.
Each is detected from objects the API serves, never assumed.

`gather` reads the objects through svclab.kube.Kube (get and list only; nothing is written), and
`judge` turns them into a `Detected` without any I/O, so the rules below are plain functions
that tests feed with recorded-shaped objects. A CRD that is not installed gives an empty answer
(the dynamic client raises ResourceNotFoundError for a kind the server does not serve); a list
the user may not read (403) is named in facts["forbidden"], and what depends on it is reported
as "unknown (cannot list X)" rather than guessed.

Load balancer (the first rule that matches wins: what someone installed on purpose comes before
what the platform brings):

  metallb   The CRD ipaddresspools.metallb.io exists and MetalLB's controller Deployment does:
            named `controller` or `metallb-controller`, labelled app=metallb or
            app.kubernetes.io/name=metallb, or running an image .../metallb/controller. The
            version is the image tag (quay.io/metallb/controller:v0.14.9 → v0.14.9); the pools
            are the IPAddressPools' spec.addresses, ranges or CIDRs:

                spec: {addresses: ["172.18.255.200-172.18.255.250", "fc00:f853::/120"]}

  kube-vip  A DaemonSet, or a static pod in kube-system (kubeadm's control-plane manifests),
            whose container runs the image .../kube-vip/kube-vip (or is named kube-vip) with the
            environment variable svc_enable="true" (with svc_enable unset it only keeps the
            control plane's address). kube-vip announces addresses; the Deployment
            kube-vip-cloud-provider (image .../kube-vip/kube-vip-cloud-provider) hands them out,
            from the ConfigMap kube-system/kubevip (keys range-global, cidr-global,
            range-<namespace>, cidr-<namespace>). Without it a Service gets an address only when
            one is written into it (spec.loadBalancerIP or the kube-vip.io/loadbalancerIPs
            annotation).

  servicelb k3s's own (klipper-lb), part of the k3s process: for each LoadBalancer Service it
            makes a DaemonSet svclb-<service>-<hash> in kube-system, labelled
            svccontroller.k3s.cattle.io/svcname, whose pods (image rancher/klipper-lb) forward
            the Service's ports on each node; the Service's addresses are those nodes'. Such a
            DaemonSet, or a node labelled svccontroller.k3s.cattle.io/enablelb, names it. On k3s
            with no other implementation and no such DaemonSet yet it is k3s's default (started
            with `--disable servicelb` there would be none, which the API does not show).

  cloud-provider-kind
            It runs outside the cluster (a process or container beside the kind nodes), so it is
            known by its traces only. Nodes do not show it: kind itself starts every kubelet with
            --provider-id=kind://<node provider>/<cluster>/<node> (kind v0.10.0 and later, e.g.
            kind://docker/kind/kind-control-plane), so a kind:// providerID names kind, with or
            without cloud-provider-kind. (cloud-provider-kind's own instances code would write
            kind://<cluster>/kind/<node>, and it starts its node controller only on nodes
            tainted node.cloudprovider.kubernetes.io/uninitialized, which kind's default kubelets
            are not.) Its traces are: the GatewayClass it creates when it starts serving a
            cluster (v0.10.0 and later), named cloud-provider-kind, with spec.controllerName
            kind.sigs.k8s.io/gateway-controller; or a LoadBalancer Service it served, whose
            status.loadBalancer.ingress[].ipMode is "Proxy" (its Envoy container proxies) and
            which carries the cloud service controller's finalizer
            service.kubernetes.io/load-balancer-cleanup. Traces stay after it stops: whether it
            runs now cannot be seen from the cluster (`svclab doctor` looks at Docker for it).

  cloud     The nodes' spec.providerID names a cloud by its scheme, used as the cloud's name:

                aws:///eu-west-1a/i-0abc123                      (EKS, or any cluster on EC2)
                gce://my-project/europe-west1-b/gke-pool-1-abcd  (GKE)
                azure:///subscriptions/.../virtualMachines/0     (AKS)

            kind:// (kind itself), k3s:// and rke2:// (the cloud controller embedded in k3s and
            RKE2) are not clouds with load balancers.

  none      Nothing above: "no controller found: LoadBalancer Services will stay <pending>".

Load-balancer addresses, from the LoadBalancer Services already served
(status.loadBalancer.ingress): whether they are IP addresses or host names (a cloud's, like AWS's
a1b2c3.elb.amazonaws.com), and their ipMode: "VIP" (or absent, as before Kubernetes 1.30): the
nodes take traffic for the address themselves, so a packet keeps the client's address up to the
node; "Proxy": a proxy in front terminates the connection, and the backend sees the proxy.

    status: {loadBalancer: {ingress: [{ip: 172.18.255.200, ipMode: VIP}]}}
    status: {loadBalancer: {ingress: [{hostname: a1b2c3.elb.amazonaws.com}]}}

With no Service served yet there is nothing to tell ("none served yet").

kube-proxy mode (Services are translated by kube-proxy, or by something that replaces it):

  - kube-proxy runs as the DaemonSet kube-system/kube-proxy (kubeadm, kind, most clouds) or as
    static pods in kube-system labelled component=kube-proxy or k8s-app=kube-proxy (RKE2). Its
    mode is the ConfigMap kube-system/kube-proxy's key config.conf, a KubeProxyConfiguration:

        apiVersion: kubeproxy.config.k8s.io/v1alpha1
        kind: KubeProxyConfiguration
        mode: ""          # "" or absent: iptables on Linux; or "ipvs", "nftables"

    or else a --proxy-mode=MODE argument of its container, or else iptables, the default.
  - k3s (kubelet version v1.31.4+k3s1) runs kube-proxy inside its own process, with no
    DaemonSet: its mode is iptables unless --kube-proxy-arg proxy-mode=... says otherwise, which
    the API does not show.
  - Cilium replaces kube-proxy when the DaemonSet `cilium` runs and the ConfigMap
    kube-system/cilium-config has kube-proxy-replacement "true" (Cilium 1.14 and later) or
    "strict" (earlier): proxy_replacement is "cilium", and the mode is "none" when no kube-proxy
    runs beside it.
  - No kube-proxy, no k3s, no replacement: "none", nothing translates Services (a kind cluster
    made with networking.kubeProxyMode: none is exactly that).
  - "unknown" when the DaemonSets could not be listed and nothing else told.

Distribution, from the nodes: kubelet version "+k3s" → k3s, "+rke2" → rke2; labels
eks.amazonaws.com/nodegroup → eks, cloud.google.com/gke-nodepool → gke,
kubernetes.azure.com/cluster → aks (or kubelet versions "-eks-" and "-gke."); providerID kind://,
or nodes named <cluster>-control-plane / <cluster>-worker<N> without one → kind; the ConfigMap
kube-system/kubeadm-config → kubeadm; else "unknown". Zones are the nodes'
topology.kubernetes.io/zone labels.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Any

import yaml
from kubernetes.dynamic.exceptions import ForbiddenError, ResourceNotFoundError

__all__ = ["Detected", "gather", "judge", "detect", "LOAD_BALANCERS", "image_tag"]

LOAD_BALANCERS = ("metallb", "kube-vip", "servicelb", "cloud-provider-kind", "cloud", "none", "unknown")
PROXY_MODES = ("iptables", "nftables", "ipvs", "none", "unknown")

CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
METALLB_POOLS_CRD = "ipaddresspools.metallb.io"
GATEWAY_CLASSES_CRD = "gatewayclasses.gateway.networking.k8s.io"
SYSTEM_CONFIGMAPS = ("kube-proxy", "cilium-config", "kubevip", "kubeadm-config")

KIND_GATEWAY_CONTROLLER = "kind.sigs.k8s.io/gateway-controller"
LB_CLEANUP_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
SERVICELB_LABEL = "svccontroller.k3s.cattle.io/svcname"
SERVICELB_NAMESPACE_LABEL = "svccontroller.k3s.cattle.io/svcnamespace"
SERVICELB_NODE_LABEL = "svccontroller.k3s.cattle.io/enablelb"
ZONE_LABEL = "topology.kubernetes.io/zone"
NOT_CLOUDS = ("kind", "k3s", "rke2")
DISTRIBUTION_LABELS = (("eks.amazonaws.com/nodegroup", "eks"), ("cloud.google.com/gke-nodepool", "gke"),
                       ("kubernetes.azure.com/cluster", "aks"))
KIND_NODE_NAME = re.compile(r"^[a-z0-9.-]+-(control-plane\d*|worker\d*)$")
NO_CONTROLLER = "no controller found: LoadBalancer Services will stay <pending>"


@dataclasses.dataclass(frozen=True)
class Detected:
    load_balancer: str        # one of LOAD_BALANCERS
    load_balancer_detail: str
    cloud: str | None         # the nodes' providerID scheme: "aws", "gce", "azure", "kind", "k3s", ...; None without
    kube_proxy_mode: str      # one of PROXY_MODES; "none": nothing translates Services, or a replacement does
    kube_proxy_detail: str
    proxy_replacement: str | None  # "cilium" or None
    ingress_classes: tuple[str, ...]
    gateway_classes: tuple[str, ...]   # () when the Gateway API CRDs are absent
    nodes: int
    zones: tuple[str, ...]
    distribution: str         # "kind", "k3s", "rke2", "kubeadm", "eks", "gke", "aks" or "unknown"
    address_kinds: tuple[str, ...] = ()   # of the served LoadBalancer Services' addresses: "ip", "hostname"
    ip_modes: tuple[str, ...] = ()        # their ipModes: "VIP" (absent counts as VIP), "Proxy"
    served: int = 0                       # how many LoadBalancer Services had an address

    @property
    def proxied(self) -> bool:
        """Whether a proxy stands in front of the load-balancer addresses (ipMode Proxy)."""
        return "Proxy" in self.ip_modes

    @property
    def addresses_detail(self) -> str:
        if not self.served:
            return "none served yet"
        kinds = " and ".join({"ip": "IP addresses", "hostname": "host names"}[k] for k in self.address_kinds)
        return f"{kinds}, ipMode {' and '.join(self.ip_modes)} ({self.served} Service{'s' if self.served > 1 else ''})"

    @property
    def translates_services(self) -> bool:
        """Whether something turns a Service's address into its endpoints (unknown counts as yes:
        the probes find out)."""
        return self.kube_proxy_mode != "none" or self.proxy_replacement is not None

    def lines(self) -> list[str]:
        """One fact per line, as svclab prints them."""
        zones = f" in zones {', '.join(self.zones)}" if self.zones else ""
        return [f"load balancer: {self.load_balancer_detail}",
                f"Service translation: {self.kube_proxy_detail}",
                f"distribution: {self.distribution}" + (f" (cloud {self.cloud})" if self.cloud else ""),
                f"load-balancer addresses: {self.addresses_detail}",
                f"nodes: {self.nodes}{zones}",
                f"ingress classes: {', '.join(self.ingress_classes) or 'none'}",
                f"gateway classes: {', '.join(self.gateway_classes) or 'none'}"]

    def as_dict(self) -> dict[str, Any]:
        found = dataclasses.asdict(self)
        for key in ("ingress_classes", "gateway_classes", "zones", "address_kinds", "ip_modes"):
            found[key] = list(found[key])
        found["translates_services"] = self.translates_services
        return found


# ------------------------------------------------------------------------------------ gathering

def _read(facts: dict, what: str, call, empty):
    """CALL's answer; EMPTY when its kind is not served (a CRD not installed) or, noted in
    facts["forbidden"] as WHAT, when the user may not read it."""
    try:
        return call()
    except ResourceNotFoundError:
        return empty
    except ForbiddenError:
        facts["forbidden"].append(what)
        return empty


def _served_version(kube, crd_name: str, default: str) -> str | None:
    """The version to read a CRD's objects at ("v1beta1"): its storage version if served, else its
    first served one; DEFAULT when the CRD itself may not be read; None when it is not installed."""
    try:
        crd = kube.get(*CRD, crd_name)
    except ForbiddenError:
        return default
    except ResourceNotFoundError:
        return None
    if crd is None:
        return None
    versions = [v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]
    stored = [v for v in versions if v.get("storage")]
    return (stored or versions or [{"name": default}])[0]["name"]


def _custom_objects(kube, facts: dict, crd_name: str, kind: str, default: str, what: str) -> tuple[bool, list]:
    """(whether the CRD is installed, its objects of KIND in every namespace)."""
    group = crd_name.partition(".")[2]
    version = _served_version(kube, crd_name, default)
    if version is None:
        return False, []
    items = _read(facts, what, lambda: kube.list(f"{group}/{version}", kind), None)
    return items is not None or what in facts["forbidden"], items or []


def _static_pods(pods: list[dict]) -> list[dict]:
    """The pods a kubelet runs from its manifest folder (their owner is the Node)."""
    return [p for p in pods if any(o.get("kind") == "Node" for o in (p.get("metadata") or {}).get("ownerReferences") or [])]


def gather(kube) -> dict:
    """The objects `judge` needs, read through KUBE (svclab.kube.Kube): nodes, DaemonSets and
    Deployments of every namespace, kube-system's static pods, LoadBalancer Services, four
    ConfigMaps of kube-system (kube-proxy, cilium-config, kubevip, kubeadm-config; None when
    absent), IngressClasses, GatewayClasses and MetalLB's IPAddressPools where their CRDs are
    installed. facts["forbidden"] names what could not be read."""
    facts: dict[str, Any] = {"forbidden": []}
    facts["nodes"] = _read(facts, "Nodes", lambda: kube.list("v1", "Node"), [])
    facts["daemonsets"] = _read(facts, "DaemonSets", lambda: kube.list("apps/v1", "DaemonSet"), [])
    facts["deployments"] = _read(facts, "Deployments", lambda: kube.list("apps/v1", "Deployment"), [])
    facts["static_pods"] = _static_pods(_read(facts, "Pods in kube-system",
                                              lambda: kube.list("v1", "Pod", "kube-system"), []))
    services = _read(facts, "Services", lambda: kube.list("v1", "Service"), [])
    facts["load_balancer_services"] = [s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"]
    facts["configmaps"] = {name: _read(facts, f"ConfigMap kube-system/{name}",
                                       lambda name=name: kube.get("v1", "ConfigMap", name, "kube-system"), None)
                           for name in SYSTEM_CONFIGMAPS}
    facts["ingress_classes"] = _read(facts, "IngressClasses",
                                     lambda: kube.list("networking.k8s.io/v1", "IngressClass"), [])
    facts["gateway_api"], facts["gateway_classes"] = _custom_objects(
        kube, facts, GATEWAY_CLASSES_CRD, "GatewayClass", "v1", "GatewayClasses")
    facts["metallb_crd"], facts["ip_address_pools"] = _custom_objects(
        kube, facts, METALLB_POOLS_CRD, "IPAddressPool", "v1beta1", "IPAddressPools")
    return facts


def detect(kube) -> Detected:
    return judge(gather(kube))


# ------------------------------------------------------------------------------- reading objects

def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _namespace(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("namespace", "")


def _labels(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}


def _containers(obj: dict) -> list[dict]:
    """The containers of a Pod, or of a Deployment's or DaemonSet's pod template."""
    spec = obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or spec
    return pod.get("containers") or []


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}


def image_repository(image: str) -> str:
    """The image without tag or digest: quay.io/metallb/controller:v0.14.9 → quay.io/metallb/controller
    (a registry's port, localhost:5000/x, is kept)."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def image_tag(image: str) -> str | None:
    """The image's tag (ghcr.io/kube-vip/kube-vip:v0.9.1 → v0.9.1), None without one."""
    last = image.split("@", 1)[0].rpartition("/")[2]
    return last.partition(":")[2] or None


def _runs_image(obj: dict, repository_end: str) -> dict | None:
    """OBJ's first container whose image repository ends with REPOSITORY_END ("/metallb/controller")."""
    return next((c for c in _containers(obj) if image_repository(c.get("image", "")).endswith(repository_end)), None)


def _version(container: dict | None) -> str:
    return (image_tag(container.get("image", "")) if container else None) or "(version unknown)"


def _ready(obj: dict, kind: str) -> str:
    """", 0 of 1 ready" when not every replica or pod is ready, else ""."""
    status = obj.get("status") or {}
    want, have = ((status.get("desiredNumberScheduled"), status.get("numberReady")) if kind == "DaemonSet"
                  else ((obj.get("spec") or {}).get("replicas", 1), status.get("readyReplicas")))
    return f", {have or 0} of {want} ready" if want is not None and (have or 0) < want else ""


def _unknown(facts: dict, *needed: str) -> str | None:
    """"unknown (cannot list X, Y)" when any of NEEDED was forbidden, else None."""
    missing = [what for what in needed if what in facts.get("forbidden", [])]
    return f"unknown (cannot list {', '.join(missing)})" if missing else None


# --------------------------------------------------------------------------------- the nodes

def provider_scheme(provider_id: str) -> str | None:
    """The scheme of a node's spec.providerID (aws:///eu-west-1a/i-0abc → aws), None without one."""
    scheme, sep, _ = (provider_id or "").partition("://")
    return scheme.lower() if sep and scheme else None


def cloud_of(nodes: list[dict]) -> str | None:
    """The providerID scheme most nodes have."""
    schemes = collections.Counter(s for n in nodes if (s := provider_scheme((n.get("spec") or {}).get("providerID", ""))))
    return schemes.most_common(1)[0][0] if schemes else None


def _kubelet_versions(nodes: list[dict]) -> list[str]:
    return [((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "") for n in nodes]


def distribution_of(facts: dict) -> str:
    nodes = facts.get("nodes") or []
    versions = _kubelet_versions(nodes)
    labels = [_labels(n) for n in nodes]
    for marker, name in (("+k3s", "k3s"), ("+rke2", "rke2")):
        if any(marker in v for v in versions):
            return name
    for label, name in DISTRIBUTION_LABELS:
        if any(label in each for each in labels):
            return name
    for marker, name in (("-eks-", "eks"), ("-gke.", "gke")):
        if any(marker in v for v in versions):
            return name
    cloud = cloud_of(nodes)
    if cloud == "kind" or (cloud is None and nodes and all(KIND_NODE_NAME.match(_name(n)) for n in nodes)
                           and any(_name(n).endswith("-control-plane") for n in nodes)):
        return "kind"
    if (facts.get("configmaps") or {}).get("kubeadm-config") is not None:
        return "kubeadm"
    return "unknown"


def zones_of(nodes: list[dict]) -> tuple[str, ...]:
    return tuple(sorted({z for n in nodes if (z := _labels(n).get(ZONE_LABEL))}))


# ----------------------------------------------------------------------------- load balancers

def _metallb(facts: dict) -> str | None:
    if not facts.get("metallb_crd"):
        return None
    controller = next((d for d in facts.get("deployments") or []
                       if _runs_image(d, "/metallb/controller")
                       or (_name(d) in ("controller", "metallb-controller")
                           and "metallb" in (_labels(d).get("app"), _labels(d).get("app.kubernetes.io/name")))), None)
    if controller is None:
        return None
    container = _runs_image(controller, "/metallb/controller") or next(iter(_containers(controller)), None)
    pools = facts.get("ip_address_pools") or []
    if (unknown := _unknown(facts, "IPAddressPools")):
        pooled = f"IPAddressPools {unknown}"
    elif pools:
        addresses = [a for p in pools for a in (p.get("spec") or {}).get("addresses") or []]
        pooled = f"{len(pools)} IPAddressPool{'s' if len(pools) > 1 else ''}: {', '.join(addresses) or 'no addresses'}"
    else:
        pooled = "no IPAddressPool: LoadBalancer Services will stay <pending>"
    return (f"MetalLB controller {_version(container)} ({_namespace(controller)}"
            f"{_ready(controller, 'Deployment')}), {pooled}")


def _kube_vip_runner(obj: dict) -> dict | None:
    return next((c for c in _containers(obj)
                 if image_repository(c.get("image", "")).endswith("/kube-vip/kube-vip") or c.get("name") == "kube-vip"), None)


def _kube_vip(facts: dict) -> str | None:
    places = (("DaemonSet", facts.get("daemonsets")), ("static pod", facts.get("static_pods")))
    found = [(kind, obj, c) for kind, objs in places for obj in objs or [] if (c := _kube_vip_runner(obj))]
    serving = [(kind, obj, c) for kind, obj, c in found if _env(c).get("svc_enable", "").lower() == "true"]
    if not serving:
        return None
    kind, obj, container = serving[0]
    where = f"{kind} {_namespace(obj)}/{_name(obj)}" if kind == "DaemonSet" else f"static pods in {_namespace(obj)}"
    detail = f"kube-vip {_version(container)} ({where}, svc_enable=true)"
    provider = next((d for d in facts.get("deployments") or []
                     if _runs_image(d, "/kube-vip/kube-vip-cloud-provider") or _name(d) == "kube-vip-cloud-provider"), None)
    if provider is None:
        return (detail + "; no kube-vip-cloud-provider: a Service gets an address only when one is written into it "
                "(spec.loadBalancerIP or the kube-vip.io/loadbalancerIPs annotation)")
    version = _version(_runs_image(provider, "/kube-vip/kube-vip-cloud-provider"))
    config = (facts.get("configmaps") or {}).get("kubevip") or {}
    ranges = ", ".join(f"{k} {v}" for k, v in sorted((config.get("data") or {}).items()) if k.startswith(("range-", "cidr-")))
    return (f"{detail}, kube-vip-cloud-provider {version} hands out addresses"
            + (f" (ConfigMap kube-system/kubevip: {ranges})" if ranges else
               " (no ranges in ConfigMap kube-system/kubevip)" if config else ""))


def _servicelb(facts: dict, distribution: str) -> str | None:
    per_service = sorted(f"{_labels(d).get(SERVICELB_NAMESPACE_LABEL, '?')}/{_labels(d)[SERVICELB_LABEL]}"
                         for d in facts.get("daemonsets") or [] if SERVICELB_LABEL in _labels(d))
    if per_service:
        return (f"k3s servicelb (klipper-lb): {len(per_service)} svclb DaemonSet{'s' if len(per_service) > 1 else ''} "
                f"(for {', '.join(per_service)}); a Service's addresses are its nodes'")
    if any(SERVICELB_NODE_LABEL in _labels(n) for n in facts.get("nodes") or []):
        return f"k3s servicelb (klipper-lb) on the nodes labelled {SERVICELB_NODE_LABEL}; a Service's addresses are its nodes'"
    if distribution == "k3s":
        return ("k3s servicelb (klipper-lb), k3s's default: no svclb DaemonSet yet, none is made before a "
                "LoadBalancer Service exists (with k3s --disable servicelb there would be no controller)")
    return None


def _ingress(service: dict) -> list[dict]:
    return ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []


def addresses_of(facts: dict) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """(address kinds, ipModes, Services with an address) of the served LoadBalancer Services."""
    kinds, modes, served = set(), set(), 0
    for svc in facts.get("load_balancer_services") or []:
        entries = [i for i in _ingress(svc) if i.get("ip") or i.get("hostname")]
        served += 1 if entries else 0
        for entry in entries:
            kinds.add("ip" if entry.get("ip") else "hostname")
            modes.add(entry.get("ipMode") or "VIP")
    return tuple(sorted(kinds)), tuple(sorted(modes, key=lambda mode: (mode != "VIP", mode))), served


def _cloud_provider_kind(facts: dict, cloud: str | None) -> str | None:
    if cloud != "kind":
        return None
    gateway_class = next((g for g in facts.get("gateway_classes") or []
                          if (g.get("spec") or {}).get("controllerName") == KIND_GATEWAY_CONTROLLER), None)
    served = sorted(f"{_namespace(s)}/{_name(s)}" for s in facts.get("load_balancer_services") or []
                    if LB_CLEANUP_FINALIZER in ((s.get("metadata") or {}).get("finalizers") or [])
                    and any(i.get("ipMode") == "Proxy" for i in _ingress(s)))
    if gateway_class is None and not served:
        return None
    trace = (f"GatewayClass {_name(gateway_class)} (controller {KIND_GATEWAY_CONTROLLER})" if gateway_class
             else f"LoadBalancer Service{'s' if len(served) > 1 else ''} {', '.join(served)} served with ipMode Proxy")
    return (f"cloud-provider-kind, outside the cluster, has served it ({trace}); whether it runs now cannot be "
            "seen from the cluster")


def _cloud(cloud: str | None, distribution: str) -> str | None:
    if cloud is None or cloud in NOT_CLOUDS:
        return None
    managed = f" ({distribution.upper()})" if distribution in ("eks", "gke", "aks") else ""
    return f"the {cloud} cloud's load balancers{managed}, from the nodes' providerID {cloud}://"


def load_balancer_of(facts: dict, cloud: str | None, distribution: str) -> tuple[str, str]:
    """(the implementation, its detail line), by the priority in the module docstring."""
    for name, found in (("metallb", _metallb(facts)), ("kube-vip", _kube_vip(facts)),
                        ("servicelb", _servicelb(facts, distribution)),
                        ("cloud-provider-kind", _cloud_provider_kind(facts, cloud)),
                        ("cloud", _cloud(cloud, distribution))):
        if found:
            return name, found
    if (unknown := _unknown(facts, "Nodes", "Deployments", "DaemonSets")):
        return "unknown", unknown
    if cloud == "kind":
        return "none", (f"{NO_CONTROLLER} (kind nodes: no trace of cloud-provider-kind, which would run outside "
                        "the cluster)")
    return "none", NO_CONTROLLER


# ------------------------------------------------------------------------------- kube-proxy

def _configmap_mode(facts: dict) -> tuple[str | None, str]:
    """(kube-proxy's mode from its ConfigMap or None, how it was found)."""
    cm = (facts.get("configmaps") or {}).get("kube-proxy")
    if cm is None:
        return None, ("ConfigMap kube-proxy unreadable" if "ConfigMap kube-system/kube-proxy" in facts.get("forbidden", [])
                      else "no ConfigMap kube-proxy")
    try:
        config = yaml.safe_load((cm.get("data") or {}).get("config.conf") or "") or {}
    except yaml.YAMLError:
        return None, "ConfigMap kube-proxy's config.conf is not YAML"
    mode = str(config.get("mode") or "").lower() if isinstance(config, dict) else ""
    return (mode, "ConfigMap kube-proxy") if mode else (None, "ConfigMap kube-proxy, mode unset: the default")


def _flag_mode(obj: dict) -> str | None:
    for c in _containers(obj):
        for arg in [*(c.get("command") or []), *(c.get("args") or [])]:
            if match := re.match(r"--proxy-mode[= ](\S+)$", str(arg)):
                return match.group(1).lower()
    return None


def _kube_proxy_runner(facts: dict) -> tuple[str, dict] | None:
    """("DaemonSet kube-system/kube-proxy" or "static pods", the object) of a running kube-proxy."""
    daemonset = next((d for d in facts.get("daemonsets") or []
                      if _name(d) == "kube-proxy" and _namespace(d) == "kube-system"), None)
    if daemonset is not None:
        return "kube-proxy DaemonSet", daemonset
    pod = next((p for p in facts.get("static_pods") or []
                if "kube-proxy" in (_labels(p).get("component"), _labels(p).get("k8s-app"))), None)
    return ("kube-proxy static pods", pod) if pod is not None else None


def _cilium(facts: dict) -> str | None:
    """The kube-proxy-replacement setting that makes Cilium replace kube-proxy, or None."""
    if not any(_name(d) == "cilium" for d in facts.get("daemonsets") or []):
        return None
    data = ((facts.get("configmaps") or {}).get("cilium-config") or {}).get("data") or {}
    setting = str(data.get("kube-proxy-replacement", "")).lower()
    return setting if setting in ("true", "strict") else None


def kube_proxy_of(facts: dict, distribution: str) -> tuple[str, str, str | None]:
    """(mode, detail line, replacement) by the rules in the module docstring."""
    replacing = _cilium(facts)
    replacement = "cilium" if replacing else None
    cilium = f"Cilium replaces kube-proxy (cilium-config kube-proxy-replacement={replacing})" if replacing else ""
    runner = _kube_proxy_runner(facts)
    if runner is not None:
        what, obj = runner
        mode, how = _configmap_mode(facts)
        if mode is None and (flag := _flag_mode(obj)):
            mode, how = flag, f"--proxy-mode={flag}"
        detail = f"{what}, mode {mode or 'iptables'} ({how}{_ready(obj, 'DaemonSet') if 'DaemonSet' in what else ''})"
        return mode or "iptables", detail + (f"; {cilium} too" if cilium else ""), replacement
    if cilium:
        k3s = " (k3s's built-in kube-proxy presumably disabled)" if distribution == "k3s" else ""
        return "none", cilium + k3s, replacement
    if distribution == "k3s":
        return ("iptables", "k3s's built-in kube-proxy (iptables: k3s's default; a --kube-proxy-arg proxy-mode "
                "would not show in the API)", None)
    if (unknown := _unknown(facts, "DaemonSets")):
        return "unknown", unknown, None
    return "none", "no kube-proxy DaemonSet and no replacement found", None


# ---------------------------------------------------------------------------------- judging

def judge(facts: dict) -> Detected:
    """What FACTS (from `gather`) show, by the rules in the module docstring."""
    nodes = facts.get("nodes") or []
    cloud = cloud_of(nodes)
    distribution = distribution_of(facts)
    load_balancer, lb_detail = load_balancer_of(facts, cloud, distribution)
    mode, proxy_detail, replacement = kube_proxy_of(facts, distribution)
    return Detected(
        load_balancer=load_balancer, load_balancer_detail=lb_detail, cloud=cloud,
        kube_proxy_mode=mode, kube_proxy_detail=proxy_detail, proxy_replacement=replacement,
        ingress_classes=tuple(sorted(_name(c) for c in facts.get("ingress_classes") or [])),
        gateway_classes=tuple(sorted(_name(c) for c in facts.get("gateway_classes") or [])),
        nodes=len(nodes), zones=zones_of(nodes), distribution=distribution,
        **dict(zip(("address_kinds", "ip_modes", "served"), addresses_of(facts))))
