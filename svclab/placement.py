"""Where svclab's own pods run.

svclab's own Deployments (the load-balancer controller, the Ingress controller and the in-cluster
client) tolerate the control-plane taint and prefer that node. It is usually Ready by the time
`kind create` returns, while the workers still start their pod network, so these pods need not
queue behind the workers; and the workers are left to the labs' backends.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONTROL_PLANE", "prefer_control_plane"]

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"   # kind's label and taint key on that node


def prefer_control_plane(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Makes every Deployment in OBJECTS tolerate and prefer the control-plane node (in place)."""
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        tolerations = pod.setdefault("tolerations", [])
        if not any(t.get("key") == CONTROL_PLANE for t in tolerations):
            tolerations.append({"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"})
        preferred = (pod.setdefault("affinity", {}).setdefault("nodeAffinity", {})
                     .setdefault("preferredDuringSchedulingIgnoredDuringExecution", []))
        term = {"weight": 100, "preference": {"matchExpressions": [{"key": CONTROL_PLANE, "operator": "Exists"}]}}
        if term not in preferred:
            preferred.append(term)
    return objects
