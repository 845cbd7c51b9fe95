"""What a cluster svclab did not make has, judged from objects shaped as the API serves them
(kind with MetalLB, with kube-vip, bare, without kube-proxy; nftables, ipvs, Cilium, k3s, EKS, a
user who may not list everything), and the calls `gather` makes for them."""

import json

import pytest
import yaml
from kubernetes.dynamic.exceptions import ForbiddenError, ResourceNotFoundError

from svclab import detect

KIND_LABELS = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def node(name, *, provider_id=None, kubelet="v1.34.0", labels=None, control_plane=False):
    all_labels = {**KIND_LABELS, "kubernetes.io/hostname": name, **(labels or {})}
    if control_plane:
        all_labels["node-role.kubernetes.io/control-plane"] = ""
        all_labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    spec = {"podCIDR": "10.244.0.0/24"}
    if provider_id:
        spec["providerID"] = provider_id
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": all_labels}, "spec": spec,
            "status": {"nodeInfo": {"kubeletVersion": kubelet, "kubeProxyVersion": kubelet,
                                    "containerRuntimeVersion": "containerd://2.1.3"},
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": name}]}}


def kind_nodes(cluster="kind", workers=2):
    names = [f"{cluster}-control-plane"] + [f"{cluster}-worker{i or ''}" for i in range(workers)]
    return [node(n, provider_id=f"kind://docker/{cluster}/{n}", control_plane=n.endswith("control-plane"))
            for n in names]


def container(name, image, *, env=None, args=None, command=None):
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if args:
        c["args"] = args
    if command:
        c["command"] = command
    return c


def workload(kind, namespace, name, *containers, labels=None, ready=True, replicas=1):
    labels = labels or {"app.kubernetes.io/name": name}
    status = ({"desiredNumberScheduled": 3, "numberReady": 3 if ready else 1} if kind == "DaemonSet"
              else {"replicas": replicas, "readyReplicas": replicas if ready else 0})
    spec = {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
                                                              "spec": {"containers": list(containers)}}}
    if kind == "Deployment":
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec, "status": status}


def configmap(name, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "kube-system"}, "data": data}


def kube_proxy_config(mode=""):
    return configmap("kube-proxy", {"config.conf": yaml.safe_dump(
        {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
         "clusterCIDR": "10.244.0.0/16", "mode": mode, "iptables": {"masqueradeAll": False}}),
        "kubeconfig.conf": "apiVersion: v1\nkind: Config\n"})


KUBE_PROXY = workload("DaemonSet", "kube-system", "kube-proxy",
                      container("kube-proxy", "registry.k8s.io/kube-proxy:v1.34.0",
                                command=["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                         "--hostname-override=$(NODE_NAME)"]),
                      labels={"k8s-app": "kube-proxy"})
KINDNET = workload("DaemonSet", "kube-system", "kindnet", container("kindnet-cni", "docker.io/kindest/kindnetd:v20250512-df8de77b"),
                   labels={"app": "kindnet", "k8s-app": "kindnet", "tier": "node"})
COREDNS = workload("Deployment", "kube-system", "coredns", container("coredns", "registry.k8s.io/coredns/coredns:v1.12.1"),
                   labels={"k8s-app": "kube-dns"}, replicas=2)
LOCAL_PATH = workload("Deployment", "local-path-storage", "local-path-provisioner",
                      container("local-path-provisioner", "docker.io/kindest/local-path-provisioner:v20250214-acbabc1a"),
                      labels={"app": "local-path-provisioner"})


def kind_facts(*, daemonsets=(KUBE_PROXY, KINDNET), deployments=(COREDNS, LOCAL_PATH), mode="", **more):
    facts = {"forbidden": [], "nodes": kind_nodes(), "daemonsets": list(daemonsets), "deployments": list(deployments),
             "static_pods": [], "load_balancer_services": [],
             "configmaps": {"kube-proxy": kube_proxy_config(mode) if mode is not None else None, "cilium-config": None,
                            "kubevip": None, "kubeadm-config": configmap("kubeadm-config", {"ClusterConfiguration": "..."})},
             "ingress_classes": [], "gateway_api": False, "gateway_classes": [], "metallb_crd": False,
             "ip_address_pools": []}
    facts.update(more)
    return facts


def metallb_facts():
    labels = {"app": "metallb", "component": "controller"}
    controller = workload("Deployment", "metallb-system", "controller",
                          container("controller", "quay.io/metallb/controller:v0.14.9",
                                    args=["--port=7472", "--log-level=info", "--tls-min-version=VersionTLS12"]),
                          labels=labels)
    speaker = workload("DaemonSet", "metallb-system", "speaker", container("speaker", "quay.io/metallb/speaker:v0.14.9"),
                       labels={"app": "metallb", "component": "speaker"})
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "plain", "namespace": "metallb-system"},
            "spec": {"addresses": ["172.18.255.200-172.18.255.250"], "autoAssign": True, "avoidBuggyIPs": False}}
    return kind_facts(daemonsets=(KUBE_PROXY, KINDNET, speaker), deployments=(COREDNS, LOCAL_PATH, controller),
                      metallb_crd=True, ip_address_pools=[pool])


KUBE_VIP_ENV = {"vip_arp": "true", "vip_interface": "eth0", "port": "6443", "cp_enable": "false",
                "svc_enable": "true", "svc_election": "true", "vip_leaseduration": "5"}


def kube_vip_facts(*, cloud_provider=True, env=KUBE_VIP_ENV):
    vip = workload("DaemonSet", "kube-system", "kube-vip",
                   container("kube-vip", "ghcr.io/kube-vip/kube-vip:v0.9.1", env=env, args=["manager"]))
    deployments = [COREDNS, LOCAL_PATH]
    if cloud_provider:
        deployments.append(workload("Deployment", "kube-system", "kube-vip-cloud-provider",
                                    container("kube-vip-cloud-provider", "ghcr.io/kube-vip/kube-vip-cloud-provider:v0.0.12",
                                              command=["/kube-vip-cloud-provider", "--leader-elect-resource-name=kube-vip-cloud-controller"]),
                                    labels={"app": "kube-vip", "component": "kube-vip-cloud-provider"}))
    facts = kind_facts(daemonsets=(KUBE_PROXY, KINDNET, vip), deployments=deployments)
    facts["configmaps"]["kubevip"] = configmap("kubevip", {"range-global": "172.18.255.200-172.18.255.250"})
    return facts


# -------------------------------------------------------------------------- load balancers

def test_metallb_on_kind_is_named_with_its_version_and_pool():
    found = detect.judge(metallb_facts())
    assert found.load_balancer == "metallb"
    assert found.load_balancer_detail == ("MetalLB controller v0.14.9 (metallb-system), "
                                          "1 IPAddressPool: 172.18.255.200-172.18.255.250")
    assert (found.cloud, found.distribution, found.kube_proxy_mode) == ("kind", "kind", "iptables")
    assert found.kube_proxy_detail == "kube-proxy DaemonSet, mode iptables (ConfigMap kube-proxy, mode unset: the default)"


def test_metallb_needs_its_crd_and_says_when_no_pool_or_ready_controller_is_there():
    facts = metallb_facts()
    facts["metallb_crd"] = False
    assert detect.judge(facts).load_balancer == "none"      # a Deployment named controller alone is not MetalLB
    facts = metallb_facts()
    facts["ip_address_pools"] = []
    facts["deployments"][-1]["status"]["readyReplicas"] = 0
    detail = detect.judge(facts).load_balancer_detail
    assert "(metallb-system, 0 of 1 ready)" in detail and "no IPAddressPool: LoadBalancer Services will stay <pending>" in detail


def test_metallb_installed_by_helm_is_known_by_its_image_and_labels():
    facts = metallb_facts()
    helm = workload("Deployment", "metallb", "metallb-controller",
                    container("controller", "quay.io/metallb/controller@sha256:" + "a" * 64),
                    labels={"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "controller"})
    facts["deployments"] = [COREDNS, helm]
    found = detect.judge(facts)
    assert found.load_balancer == "metallb" and "(version unknown) (metallb)" in found.load_balancer_detail


def test_kube_vip_with_its_cloud_provider_on_kind():
    found = detect.judge(kube_vip_facts())
    assert found.load_balancer == "kube-vip"
    assert found.load_balancer_detail == (
        "kube-vip v0.9.1 (DaemonSet kube-system/kube-vip, svc_enable=true), kube-vip-cloud-provider v0.0.12 hands out "
        "addresses (ConfigMap kube-system/kubevip: range-global 172.18.255.200-172.18.255.250)")


def test_kube_vip_without_a_cloud_provider_or_without_svc_enable():
    alone = detect.judge(kube_vip_facts(cloud_provider=False))
    assert alone.load_balancer == "kube-vip" and "no kube-vip-cloud-provider" in alone.load_balancer_detail
    control_plane_only = detect.judge(kube_vip_facts(env={**KUBE_VIP_ENV, "svc_enable": "false", "cp_enable": "true"}))
    assert control_plane_only.load_balancer == "none"


def test_kube_vip_as_a_static_pod_of_kubeadm():
    facts = kind_facts()
    facts["nodes"] = [node("cp-1", control_plane=True), node("worker-1")]
    facts["static_pods"] = [{"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "kube-vip-cp-1", "namespace": "kube-system",
                                          "ownerReferences": [{"kind": "Node", "name": "cp-1"}]},
                             "spec": {"containers": [container("kube-vip", "ghcr.io/kube-vip/kube-vip:v0.8.9",
                                                               env={"cp_enable": "true", "svc_enable": "true"})]}}]
    found = detect.judge(facts)
    assert found.load_balancer == "kube-vip" and "static pods in kube-system" in found.load_balancer_detail
    assert found.distribution == "kubeadm" and found.cloud is None


def test_a_bare_kind_cluster_has_no_load_balancer_although_its_nodes_have_kind_provider_ids():
    found = detect.judge(kind_facts())
    assert found.cloud == "kind"          # kind's own --provider-id, not cloud-provider-kind's doing
    assert found.load_balancer == "none"
    assert found.load_balancer_detail.startswith("no controller found: LoadBalancer Services will stay <pending>")
    assert (found.nodes, found.zones, found.translates_services) == (3, (), True)


def test_cloud_provider_kind_is_known_by_its_gateway_class_or_a_service_it_served():
    gateway_class = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                     "metadata": {"name": "cloud-provider-kind"},
                     "spec": {"controllerName": "kind.sigs.k8s.io/gateway-controller",
                              "description": "cloud-provider-kind gateway API"}}
    found = detect.judge(kind_facts(gateway_api=True, gateway_classes=[gateway_class]))
    assert found.load_balancer == "cloud-provider-kind" and found.gateway_classes == ("cloud-provider-kind",)
    assert "GatewayClass cloud-provider-kind" in found.load_balancer_detail
    served = {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "web", "namespace": "demo", "finalizers": ["service.kubernetes.io/load-balancer-cleanup"]},
              "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
              "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.5", "ipMode": "Proxy",
                                                       "ports": [{"port": 80, "protocol": "TCP"}]}]}}}
    found = detect.judge(kind_facts(load_balancer_services=[served]))
    assert found.load_balancer == "cloud-provider-kind" and "demo/web" in found.load_balancer_detail
    # MetalLB installed by hand comes first, whatever else served the cluster once.
    assert detect.judge({**metallb_facts(), "load_balancer_services": [served]}).load_balancer == "metallb"
    # Its Envoy proxies: the addresses are proxied, and say so.
    assert found.proxied and found.addresses_detail == "IP addresses, ipMode Proxy (1 Service)"


def test_load_balancer_addresses_ip_or_host_name_vip_or_proxy():
    def lb(name, *ingress):
        return {"metadata": {"name": name, "namespace": "demo"}, "spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": list(ingress)}}}

    found = detect.judge(metallb_facts())
    assert (found.address_kinds, found.ip_modes, found.served) == ((), (), 0)
    assert "load-balancer addresses: none served yet" in found.lines() and not found.proxied
    elb = lb("web", {"hostname": "a1b2c3.elb.amazonaws.com"})
    vip = lb("api", {"ip": "172.18.255.200", "ipMode": "VIP"})
    pending = lb("queued")
    found = detect.judge({**metallb_facts(), "load_balancer_services": [elb, vip, pending]})
    assert (found.address_kinds, found.ip_modes, found.served) == (("hostname", "ip"), ("VIP",), 2)
    assert found.addresses_detail == "host names and IP addresses, ipMode VIP (2 Services)"
    assert not found.proxied   # a host name alone says nothing of a proxy (an NLB keeps the client)
    data = found.as_dict()
    assert data["address_kinds"] == ["hostname", "ip"] and data["ip_modes"] == ["VIP"]


# ----------------------------------------------------------------------------- kube-proxy

def test_kind_with_kube_proxy_mode_none_translates_nothing():
    found = detect.judge(kind_facts(daemonsets=(KINDNET,), mode=None))
    assert (found.kube_proxy_mode, found.proxy_replacement) == ("none", None)
    assert found.kube_proxy_detail == "no kube-proxy DaemonSet and no replacement found"
    assert found.translates_services is False


@pytest.mark.parametrize("mode", ["nftables", "ipvs"])
def test_the_mode_comes_from_kube_proxy_s_configmap(mode):
    found = detect.judge(kind_facts(mode=mode))
    assert found.kube_proxy_mode == mode
    assert found.kube_proxy_detail == f"kube-proxy DaemonSet, mode {mode} (ConfigMap kube-proxy)"


def test_a_proxy_mode_flag_counts_when_the_configmap_says_nothing():
    flagged = workload("DaemonSet", "kube-system", "kube-proxy",
                       container("kube-proxy", "registry.k8s.io/kube-proxy:v1.33.1", command=["kube-proxy", "--proxy-mode=ipvs"]))
    found = detect.judge(kind_facts(daemonsets=(flagged,), mode=None))
    assert (found.kube_proxy_mode, found.kube_proxy_detail) == ("ipvs", "kube-proxy DaemonSet, mode ipvs (--proxy-mode=ipvs)")


def test_cilium_replacing_kube_proxy():
    cilium = workload("DaemonSet", "kube-system", "cilium", container("cilium-agent", "quay.io/cilium/cilium:v1.17.4"),
                      labels={"k8s-app": "cilium"})
    facts = kind_facts(daemonsets=(cilium,), mode=None)
    facts["configmaps"]["cilium-config"] = configmap("cilium-config", {"kube-proxy-replacement": "true",
                                                                       "routing-mode": "tunnel", "tunnel-protocol": "vxlan"})
    found = detect.judge(facts)
    assert (found.kube_proxy_mode, found.proxy_replacement) == ("none", "cilium")
    assert found.kube_proxy_detail == "Cilium replaces kube-proxy (cilium-config kube-proxy-replacement=true)"
    assert found.translates_services is True
    facts["configmaps"]["cilium-config"]["data"]["kube-proxy-replacement"] = "false"
    assert detect.judge(facts).translates_services is False


# ------------------------------------------------------------------------- k3s and clouds

def k3s_facts(*, svclb=True):
    nodes = [node("k3s-server", provider_id="k3s://k3s-server", kubelet="v1.31.4+k3s1", control_plane=True,
                  labels={"node-role.kubernetes.io/master": "true", "node.kubernetes.io/instance-type": "k3s"}),
             node("k3s-agent", provider_id="k3s://k3s-agent", kubelet="v1.31.4+k3s1",
                  labels={"node.kubernetes.io/instance-type": "k3s"})]
    daemonsets = []
    if svclb:
        daemonsets.append(workload("DaemonSet", "kube-system", "svclb-traefik-5c2b9c1e",
                                   container("lb-tcp-80", "rancher/klipper-lb:v0.4.9"),
                                   container("lb-tcp-443", "rancher/klipper-lb:v0.4.9"),
                                   labels={"svccontroller.k3s.cattle.io/svcname": "traefik",
                                           "svccontroller.k3s.cattle.io/svcnamespace": "kube-system",
                                           "svccontroller.k3s.cattle.io/nodeselector": "false"}))
    traefik = workload("Deployment", "kube-system", "traefik", container("traefik", "rancher/mirrored-library-traefik:3.3.2"))
    ingress_class = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                     "metadata": {"name": "traefik", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                     "spec": {"controller": "traefik.io/ingress-controller"}}
    return {"forbidden": [], "nodes": nodes, "daemonsets": daemonsets, "deployments": [COREDNS, traefik],
            "static_pods": [], "load_balancer_services": [],
            "configmaps": {"kube-proxy": None, "cilium-config": None, "kubevip": None, "kubeadm-config": None},
            "ingress_classes": [ingress_class], "gateway_api": False, "gateway_classes": [],
            "metallb_crd": False, "ip_address_pools": []}


def test_k3s_with_servicelb_traefik_and_its_built_in_kube_proxy():
    found = detect.judge(k3s_facts())
    assert (found.distribution, found.cloud) == ("k3s", "k3s")
    assert found.load_balancer == "servicelb"
    assert "1 svclb DaemonSet (for kube-system/traefik)" in found.load_balancer_detail
    assert found.kube_proxy_mode == "iptables" and found.kube_proxy_detail.startswith("k3s's built-in kube-proxy (iptables")
    assert found.ingress_classes == ("traefik",)


def test_k3s_without_a_svclb_daemonset_yet_is_servicelb_by_default():
    found = detect.judge(k3s_facts(svclb=False))
    assert found.load_balancer == "servicelb" and "k3s's default" in found.load_balancer_detail


def test_an_eks_shaped_cluster_uses_the_cloud_s_load_balancers():
    nodes = [node(f"ip-10-0-{i}-10.eu-west-1.compute.internal", provider_id=f"aws:///{zone}/i-0abc{i}",
                  kubelet="v1.31.4-eks-aeac579",
                  labels={"eks.amazonaws.com/nodegroup": "default", "topology.kubernetes.io/zone": zone,
                          "topology.kubernetes.io/region": "eu-west-1"})
             for i, zone in enumerate(["eu-west-1b", "eu-west-1a", "eu-west-1a"])]
    aws_node = workload("DaemonSet", "kube-system", "aws-node",
                        container("aws-node", "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2"))
    facts = kind_facts(daemonsets=(KUBE_PROXY, aws_node), deployments=(COREDNS,), nodes=nodes)
    facts["configmaps"]["kubeadm-config"] = None
    found = detect.judge(facts)
    assert (found.cloud, found.distribution, found.load_balancer) == ("aws", "eks", "cloud")
    assert found.zones == ("eu-west-1a", "eu-west-1b") and found.nodes == 3
    assert "(EKS)" in found.load_balancer_detail
    # cloud-provider-kind serves kind clusters only: a copy of its GatewayClass elsewhere is no trace of it.
    copied = {"metadata": {"name": "cloud-provider-kind"}, "spec": {"controllerName": "kind.sigs.k8s.io/gateway-controller"}}
    assert detect.judge({**facts, "gateway_classes": [copied]}).load_balancer == "cloud"


def test_provider_ids_and_images_are_read_as_their_formats_say():
    assert detect.provider_scheme("aws:///eu-west-1a/i-0abc") == "aws"
    assert detect.provider_scheme("gce://proj/europe-west1-b/gke-a-1") == "gce"
    assert detect.zones_of([node(str(i), labels={"topology.kubernetes.io/zone": z})
                            for i, z in enumerate("dbcab")] + [node("no-zone")]) == ("a", "b", "c", "d")
    assert detect.provider_scheme("") is None and detect.provider_scheme("i-0abc") is None
    assert detect.image_tag("localhost:5000/metallb/controller:v0.15.2") == "v0.15.2"
    assert detect.image_tag("localhost:5000/metallb/controller") is None
    assert detect.image_repository("localhost:5000/kube-vip/kube-vip:v0.9.1@sha256:ab") == "localhost:5000/kube-vip/kube-vip"


# ------------------------------------------------------------------ forbidden and the outputs

def test_what_cannot_be_listed_is_unknown_not_guessed():
    facts = kind_facts(daemonsets=(), deployments=(), mode=None, forbidden=["DaemonSets", "Deployments"])
    found = detect.judge(facts)
    assert found.kube_proxy_mode == "unknown" and found.kube_proxy_detail == "unknown (cannot list DaemonSets)"
    assert found.load_balancer == "unknown"
    assert found.load_balancer_detail == "unknown (cannot list Deployments, DaemonSets)"
    assert found.translates_services is True       # the probes find out


def test_lines_and_the_results_json():
    found = detect.judge(metallb_facts())
    lines = found.lines()
    assert lines[0].startswith("load balancer: MetalLB controller v0.14.9")
    assert "distribution: kind (cloud kind)" in lines and "nodes: 3" in lines
    data = json.loads(json.dumps(found.as_dict()))
    assert data["load_balancer"] == "metallb" and data["zones"] == [] and data["translates_services"] is True
    assert set(data) >= {"kube_proxy_mode", "proxy_replacement", "ingress_classes", "gateway_classes", "distribution"}


# --------------------------------------------------------------------------------- gathering

class FakeKube:
    """svclab.kube.Kube's get and list over a dict of objects by (apiVersion, kind); kinds not in
    SERVED raise ResourceNotFoundError as the dynamic client does, FORBIDDEN ones a 403."""

    def __init__(self, objects, served, forbidden=()):
        self.objects, self.served, self.forbidden, self.calls = objects, set(served), set(forbidden), []

    def _check(self, api_version, kind):
        if (api_version, kind) not in self.served:
            raise ResourceNotFoundError(f"No matches found for {{'api_version': '{api_version}', 'kind': '{kind}'}}")
        if kind in self.forbidden:
            raise ForbiddenError(type("E", (), {"status": 403, "reason": "Forbidden", "body": "", "headers": {}})())

    def list(self, api_version, kind, namespace=None, *, label_selector=None, field_selector=None):
        self.calls.append(("list", api_version, kind, namespace))
        self._check(api_version, kind)
        return [o for o in self.objects.get((api_version, kind), [])
                if namespace is None or o["metadata"].get("namespace") == namespace]

    def get(self, api_version, kind, name, namespace=None):
        self.calls.append(("get", api_version, kind, name))
        self._check(api_version, kind)
        return next((o for o in self.objects.get((api_version, kind), []) if o["metadata"]["name"] == name
                     and o["metadata"].get("namespace") == namespace), None)


CORE = {("v1", "Node"), ("apps/v1", "DaemonSet"), ("apps/v1", "Deployment"), ("v1", "Pod"), ("v1", "Service"),
        ("v1", "ConfigMap"), ("networking.k8s.io/v1", "IngressClass"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition")}


def test_gather_on_a_bare_kind_cluster_reads_little_and_takes_absent_crds_as_empty():
    objects = {("v1", "Node"): kind_nodes(), ("apps/v1", "DaemonSet"): [KUBE_PROXY, KINDNET],
               ("apps/v1", "Deployment"): [COREDNS], ("v1", "ConfigMap"): [kube_proxy_config("nftables")],
               ("v1", "Service"): [{"metadata": {"name": "kubernetes", "namespace": "default"}, "spec": {"type": "ClusterIP"}}]}
    kube = FakeKube(objects, CORE)
    facts = detect.gather(kube)
    assert facts["gateway_api"] is False and facts["gateway_classes"] == [] and facts["metallb_crd"] is False
    assert facts["forbidden"] == [] and facts["load_balancer_services"] == []
    assert len(kube.calls) <= 14
    assert ("list", "v1", "Pod", "kube-system") in kube.calls
    assert not any(call[2] in ("GatewayClass", "IPAddressPool") for call in kube.calls)   # no CRD, no list
    found = detect.judge(facts)
    assert (found.kube_proxy_mode, found.load_balancer, found.distribution) == ("nftables", "none", "kind")


def crd(name, versions):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
            "spec": {"versions": [{"name": v, "served": True, "storage": i == 0} for i, v in enumerate(versions)]}}


def test_gather_lists_crd_objects_at_a_served_version():
    facts = metallb_facts()
    objects = {("v1", "Node"): facts["nodes"], ("apps/v1", "DaemonSet"): facts["daemonsets"],
               ("apps/v1", "Deployment"): facts["deployments"],
               ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): [
                   crd("ipaddresspools.metallb.io", ["v1beta1"]),
                   crd("gatewayclasses.gateway.networking.k8s.io", ["v1", "v1beta1"])],
               ("metallb.io/v1beta1", "IPAddressPool"): facts["ip_address_pools"],
               ("gateway.networking.k8s.io/v1", "GatewayClass"): [
                   {"metadata": {"name": "eg"}, "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}}]}
    kube = FakeKube(objects, CORE | {("metallb.io/v1beta1", "IPAddressPool"), ("gateway.networking.k8s.io/v1", "GatewayClass")})
    found = detect.detect(kube)
    assert found.load_balancer == "metallb" and "172.18.255.200-172.18.255.250" in found.load_balancer_detail
    assert found.gateway_classes == ("eg",)
    assert ("list", "metallb.io/v1beta1", "IPAddressPool", None) in kube.calls


def test_gather_records_what_it_may_not_list_and_goes_on():
    kube = FakeKube({("v1", "Node"): kind_nodes()}, CORE, forbidden={"DaemonSet", "ConfigMap", "CustomResourceDefinition"})
    facts = detect.gather(kube)
    assert "DaemonSets" in facts["forbidden"] and "ConfigMap kube-system/kube-proxy" in facts["forbidden"]
    # CRDs it may not read: the objects are listed anyway, and an unserved kind is still empty.
    assert facts["metallb_crd"] is False and facts["gateway_classes"] == []
    found = detect.judge(facts)
    assert found.kube_proxy_mode == "unknown" and found.nodes == 3
    pool = {"metadata": {"name": "p", "namespace": "metallb-system"}, "spec": {"addresses": ["10.0.0.0/28"]}}
    kube = FakeKube({("metallb.io/v1beta1", "IPAddressPool"): [pool]}, CORE | {("metallb.io/v1beta1", "IPAddressPool")},
                    forbidden={"CustomResourceDefinition"})
    facts = detect.gather(kube)
    assert facts["metallb_crd"] is True and facts["ip_address_pools"] == [pool]
