"""The cluster's Ingress controller: Traefik, from svclab's own manifest, serving every Ingress of
class svclab-traefik behind one LoadBalancer Service (which stays <pending> without a provider)."""

from __future__ import annotations

from . import render
from .config import pins
from .kube import is_managed, load_manifests
from .placement import prefer_control_plane

__all__ = ["INGRESS_CLASS", "NAMESPACE", "SERVICE", "images", "install", "remove_cluster_scoped"]

NAMESPACE = "svclab-traefik"
SERVICE = "traefik"
INGRESS_CLASS = "svclab-traefik"


def images(controller: str) -> list[str]:
    return [pins()["traefik"]["image"]] if controller == "traefik" else []


def objects() -> list[dict]:
    text = render.manifest("ingress-traefik.yaml", render.context(namespace=NAMESPACE))
    return prefer_control_plane(load_manifests(text))


def install(env) -> None:
    if env.settings.ingress == "none":
        return
    env.step(f"applying Traefik {pins()['traefik']['version']} as the Ingress controller")
    env.kube.apply(objects(), namespace=NAMESPACE)
    env.kube.wait_deployment(NAMESPACE, "traefik", timeout=env.settings.wait_timeout)


def remove_cluster_scoped(kube) -> list[str]:
    """On a cluster svclab did not make, once its namespace is gone: the cluster-scoped objects
    `install` made there (its ClusterRole, ClusterRoleBinding, IngressClass), each only where it
    carries svclab's label; returns 'Kind name' of each one removed."""
    removed = []
    for obj in objects():
        if obj["kind"] == "Namespace" or kube.is_namespaced(obj["apiVersion"], obj["kind"]):
            continue
        found = kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        if found is not None and is_managed(found):
            kube.delete([obj])
            removed.append(f"{obj['kind']} {obj['metadata']['name']}")
    return removed
