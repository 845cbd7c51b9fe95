"""A count of a cluster's objects outside svclab's namespaces, taken before and after a run on a
cluster svclab did not make: if the two differ, svclab changed something that is not its own.

Gathering reads the API's discovery documents (`/api/v1`, `/apis`, `/apis/GROUP/VERSION`) and
lists every resource that can be listed (subresources such as `pods/log` are not), counting, per
`group/version kind`, the objects whose namespace is not svclab's (cluster-scoped objects: all
of them, except svclab's own Namespace objects). Events are not counted: the cluster writes them
all the time, about everything. `compare` is pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

__all__ = ["count", "compare", "UNCOUNTED"]

# Kinds the cluster itself creates and deletes at any time, whatever svclab does.
UNCOUNTED = {"v1 Event", "events.k8s.io/v1 Event"}
PAGE = 500


def _discovery(get: Callable[[str], Any]) -> list[tuple[str, str, str, bool]]:
    """(group/version, resource, kind, namespaced) of every listable resource."""
    found = []
    versions = ["v1"] + [g["preferredVersion"]["groupVersion"] for g in get("/apis").get("groups", [])]
    for group_version in versions:
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        try:
            resources = get(path).get("resources", [])
        except Exception:  # noqa: BLE001 - an aggregated API that does not answer has nothing to count
            continue
        for r in resources:
            if "/" not in r["name"] and "list" in r.get("verbs", []):
                found.append((group_version, r["name"], r["kind"], bool(r.get("namespaced"))))
    return found


def count(kube, own_namespaces: Collection[str]) -> dict[str, int]:
    """Per 'group/version Kind', the objects outside OWN_NAMESPACES (see the module docstring)."""
    def get(path: str, query: list[tuple[str, str]] | None = None) -> Any:
        return json.loads(kube.get_json(path, query, timeout=30))

    counts: dict[str, int] = {}
    for group_version, resource, kind, namespaced in _discovery(get):
        key = f"{group_version} {kind}"
        if key in UNCOUNTED:
            continue
        base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        total, token = 0, ""
        for _ in range(1000):   # pages of PAGE objects: bounded
            query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
            try:
                page = get(f"{base}/{resource}", query)
            except Exception:  # noqa: BLE001 - forbidden or gone between discovery and list
                total = -1
                break
            for item in page.get("items", []):
                meta = item.get("metadata") or {}
                if namespaced and meta.get("namespace") in own_namespaces:
                    continue
                if key == "v1 Namespace" and meta.get("name") in own_namespaces:
                    continue
                total += 1
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                break
        counts[key] = total
    return counts


def compare(before: Mapping[str, int], after: Mapping[str, int]) -> list[str]:
    """One line per kind whose count changed ('apps/v1 Deployment: 5 before, 6 after'); [] when equal."""
    return [f"{key}: {before.get(key, 0)} before, {after.get(key, 0)} after"
            for key in sorted(set(before) | set(after)) if before.get(key, 0) != after.get(key, 0)]
