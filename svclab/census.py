"""A census of a cluster's objects outside svclab's namespaces, taken before and after a run on a
cluster svclab did not make: it shows whether svclab wrote or removed anything that is not its own.

Gathering reads the API's discovery documents (`/api/v1`, `/apis`, `/apis/GROUP/VERSION`) and
lists every resource that can be listed (subresources such as `pods/log` are not). Per
`group/version Kind` it keeps every object whose namespace is not svclab's (cluster-scoped
objects: all of them, except svclab's own Namespace objects and the ClusterIP allocations of
Services in svclab's namespaces, IPAddress objects whose parentRef names such a Service), each as

    "NAMESPACE/NAME" (or "NAME") -> Seen(uid, owned, written)

`owned` says a controller owns the object (an ownerReference with `controller: true`: a Pod of a
ReplicaSet, an EndpointSlice of a Service), which replaces it by itself; `written` is the latest
time in its `metadata.managedFields` of an entry whose manager is svclab's (every write svclab
makes carries that manager: server-side applies by name, other requests through svclab's
User-Agent), '' when svclab never wrote it. Events are not kept: the cluster writes them all the
time, about everything.

`compare` is pure. A cluster lives while svclab runs (its controllers add ServiceAccounts at
start-up, a user's Deployment replaces a Pod), so a count that differs is not by itself svclab's
doing. What fails the census:
- an object svclab wrote during the run (`written` new or later than before): created,
  changed or labelled by svclab outside its namespaces;
- an object gone that no controller owned (nothing would have replaced it).
Objects the cluster added without svclab, and owned objects replaced by their controller, are
listed as such and do not fail it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .kube import FIELD_MANAGER

__all__ = ["Census", "Seen", "Changes", "take", "compare", "UNCOUNTED"]

# Kinds the cluster itself creates and deletes at any time, whatever svclab does.
UNCOUNTED = {"v1 Event", "events.k8s.io/v1 Event"}
PAGE = 500


@dataclass(frozen=True)
class Seen:
    uid: str
    owned: bool = False
    written: str = ""


@dataclass
class Census:
    """Per kind, the objects outside svclab's namespaces; a kind that could not be listed maps
    to None."""
    kinds: dict[str, dict[str, Seen] | None] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Per kind, how many objects (-1: could not be listed)."""
        return {kind: -1 if objects is None else len(objects) for kind, objects in self.kinds.items()}


@dataclass
class Changes:
    written: list[str] = field(default_factory=list)     # svclab wrote these: fails
    gone: list[str] = field(default_factory=list)        # removed, no controller owned them: fails
    by_cluster: list[str] = field(default_factory=list)  # added or replaced by the cluster itself
    unlisted: list[str] = field(default_factory=list)    # listable before or after only

    @property
    def problems(self) -> list[str]:
        return ([f"svclab wrote {k}" for k in self.written] + [f"gone: {k}" for k in self.gone])


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


def seen(item: Mapping[str, Any]) -> Seen:
    meta = item.get("metadata") or {}
    owned = any(ref.get("controller") for ref in meta.get("ownerReferences") or [])
    written = max((entry.get("time") or "" for entry in meta.get("managedFields") or []
                   if entry.get("manager") == FIELD_MANAGER), default="")
    return Seen(meta.get("uid") or "", owned, written)


def take(kube, own_namespaces: Collection[str]) -> Census:
    """The census of the cluster KUBE reaches, outside OWN_NAMESPACES (see the module docstring)."""
    def get(path: str, query: list[tuple[str, str]] | None = None) -> Any:
        return json.loads(kube.get_json(path, query, timeout=30))

    census = Census()
    for group_version, resource, kind, namespaced in _discovery(get):
        key = f"{group_version} {kind}"
        if key in UNCOUNTED:
            continue
        base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        objects: dict[str, Seen] | None = {}
        token = ""
        for _ in range(1000):   # pages of PAGE objects: bounded
            query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
            try:
                page = get(f"{base}/{resource}", query)
            except Exception:  # noqa: BLE001 - forbidden or gone between discovery and list
                objects = None
                break
            for item in page.get("items", []):
                meta = item.get("metadata") or {}
                namespace = meta.get("namespace") if namespaced else None
                if namespace in own_namespaces or (key == "v1 Namespace" and meta.get("name") in own_namespaces) \
                        or _parent_namespace(item) in own_namespaces:
                    continue
                objects[f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))] = seen(item)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                break
        census.kinds[key] = objects
    return census


def _parent_namespace(item: Mapping[str, Any]) -> str | None:
    """The namespace of the object a cluster-scoped ITEM was made for (an IPAddress's parentRef:
    its Service), or None. Such an object goes with its Service, whoever deletes that."""
    parent = (item.get("spec") or {}).get("parentRef")
    return parent.get("namespace") if isinstance(parent, Mapping) else None


def compare(before: Census, after: Census) -> Changes:
    """What changed from BEFORE to AFTER, sorted by kind and name (see the module docstring)."""
    changes = Changes()
    for kind in sorted(set(before.kinds) | set(after.kinds)):
        # a kind absent from one census (a CRD made or removed meanwhile) had no objects there
        old, new = before.kinds.get(kind, {}), after.kinds.get(kind, {})
        if old is None or new is None:
            if (old is None) != (new is None):
                changes.unlisted.append(kind)
            continue
        for name in sorted(set(old) | set(new)):
            was, now = old.get(name), new.get(name)
            label = f"{kind} {name}"
            if now is not None and now.written and (was is None or now.written != was.written):
                changes.written.append(label)
            elif was is not None and (now is None or now.uid != was.uid):
                (changes.by_cluster if was.owned else changes.gone).append(
                    label + (" (a controller owned it, and replaces its own)" if was.owned else ""))
            elif was is None:
                changes.by_cluster.append(label + " (added, not by svclab)")
    return changes
