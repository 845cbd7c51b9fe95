"""--install metallb on a cluster svclab did not make: where it is refused, and what its removal
takes away (only objects named as MetalLB's that carry svclab's label, the webhook first)."""

from svclab.kube import MANAGED_BY
from svclab.providers.metallb import NAMESPACE, install_refusal, remove_from_target


def test_it_goes_only_where_nothing_implements_load_balancers_and_the_nodes_are_on_docker():
    assert install_refusal("none", "", None, "kind") == ""
    assert install_refusal("none", "", "svclab", "kind") == ""   # a killed run's namespace is svclab's own
    assert install_refusal("kube-vip", "kube-vip (cloud provider)", None, "kind") == \
        "--install metallb: this cluster already has kube-vip (cloud provider) for LoadBalancer Services"
    assert "namespace metallb-system exists already and is not svclab's" in install_refusal("none", "", "someone", "kind")
    assert "not containers of this machine's Docker" in install_refusal("none", "", None, None)


def _obj(api_version, kind, name, ours=True):
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "labels": dict(MANAGED_BY) if ours else {"app": "metallb"}}}


class Cluster:
    """Objects by (kind, name); list honours svclab's label selector; every delete is recorded."""

    def __init__(self, objects):
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.deleted: list[str] = []

    def list(self, api_version, kind, namespace=None, *, label_selector=None):
        assert label_selector == "app.kubernetes.io/managed-by=svclab"
        return [o for (k, _), o in self.objects.items()
                if k == kind and MANAGED_BY.items() <= o["metadata"]["labels"].items()]

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get((kind, name))

    def delete(self, objects):
        for o in objects:
            self.objects.pop((o["kind"], o["metadata"]["name"]))
            self.deleted.append(f"{o['kind']} {o['metadata']['name']}")

    def delete_namespace(self, name, *, timeout):
        self.delete([self.objects[("Namespace", name)]])


def test_removal_takes_only_svclab_s_metallb_objects_webhook_first():
    crd = "apiextensions.k8s.io/v1"
    rbac = "rbac.authorization.k8s.io/v1"
    cluster = Cluster([
        _obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "metallb-webhook-configuration"),
        _obj("v1", "Namespace", NAMESPACE),
        _obj(crd, "CustomResourceDefinition", "ipaddresspools.metallb.io"),
        _obj(crd, "CustomResourceDefinition", "l2advertisements.metallb.io"),
        _obj(crd, "CustomResourceDefinition", "certificates.cert-manager.io"),   # svclab's label, not MetalLB's name
        _obj(rbac, "ClusterRole", "metallb-system:controller"),
        _obj(rbac, "ClusterRole", "metallb-system:speaker", ours=False),         # MetalLB's name, someone else's
        _obj(rbac, "ClusterRoleBinding", "metallb-system:controller"),
    ])
    removed = remove_from_target(cluster, timeout=5)
    assert removed == cluster.deleted == [
        "ValidatingWebhookConfiguration metallb-webhook-configuration",
        f"Namespace {NAMESPACE}",
        "ClusterRoleBinding metallb-system:controller",
        "ClusterRole metallb-system:controller",
        "CustomResourceDefinition ipaddresspools.metallb.io",
        "CustomResourceDefinition l2advertisements.metallb.io",
    ]
    assert set(cluster.objects) == {("CustomResourceDefinition", "certificates.cert-manager.io"),
                                    ("ClusterRole", "metallb-system:speaker")}


def test_a_namespace_that_is_not_svclab_s_stays():
    cluster = Cluster([_obj("v1", "Namespace", NAMESPACE, ours=False)])
    assert remove_from_target(cluster, timeout=5) == []
    assert ("Namespace", NAMESPACE) in cluster.objects
