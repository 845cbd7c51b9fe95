"""Whether an object is ready, judged from its JSON alone (the dicts the API server returns, with
their camelCase field names). Nothing here talks to the cluster, so every rule can be tested on a
recorded object.

What each rule reads:

- Deployment: `metadata.generation` against `status.observedGeneration` (has the controller seen
  the latest spec at all?), then `spec.replicas` against `status.updatedReplicas` (pods of the
  latest template) and `status.availableReplicas` (pods Ready for `minReadySeconds`). A status
  without a field means zero: the controller leaves out counters that are zero.
- DaemonSet: the same generation check, then `status.desiredNumberScheduled` (nodes that should
  run a pod, which must be more than none) against `status.numberReady` and
  `status.updatedNumberScheduled`.
- Node: the `Ready` entry of `status.conditions` with status "True" (the kubelet's heartbeat and
  a working pod network; "False" and "Unknown" are both not ready).
- CustomResourceDefinition: the `Established` condition, "True" once the API server serves the
  new kind (before that, creating an object of the kind fails with 404).
- Services and EndpointSlices: a Service with a `spec.selector` has ready endpoints once an
  EndpointSlice labelled `kubernetes.io/service-name: <its name>` holds an endpoint whose
  `conditions.ready` is true. The EndpointSlice controller always sets `ready`; an absent one
  is not taken as ready here. Services without a selector get their endpoints by hand and are
  not waited for.
- Pods (broken_pod_reason): `metadata.creationTimestamp` and `metadata.deletionTimestamp` to
  skip pods of an earlier rollout, the `PodScheduled` condition's `reason`, `message` and
  `lastTransitionTime`, and `state.waiting.reason`, `image`, `name` and `restartCount` of each
  entry in `status.containerStatuses` and `status.initContainerStatuses`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["deployment_available", "deployment_failure", "daemonset_ready", "node_ready", "crd_established", "endpoints_ready",
           "broken_pod_reason", "IMAGE_FAILURES"]

Obj = dict[str, Any]

# Waiting reasons that mean the container will not start until someone changes the pod or the image.
IMAGE_FAILURES = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                  "CreateContainerConfigError")
# A container that restarted this often is crashing for good, not settling after a slow start.
CRASH_RESTARTS = 5
# Seconds a pod may stay unschedulable before that counts as broken: a node that was just created
# or restarted gets Ready (and loses its not-ready taint) within that time.
UNSCHEDULABLE_GRACE = 30


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _generation_observed(obj: Obj) -> bool:
    return (_status(obj).get("observedGeneration") or 0) >= (obj.get("metadata", {}).get("generation") or 0)


def _condition_true(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in _status(obj).get("conditions") or [])


def deployment_available(obj: Obj) -> bool:
    """Whether every replica of the Deployment's latest template is available."""
    want = (obj.get("spec") or {}).get("replicas") or 0
    status = _status(obj)
    return _generation_observed(obj) and (status.get("updatedReplicas") or 0) == want \
        and (status.get("availableReplicas") or 0) == want


# What the API server says when a policy, not a passing state, refuses a pod.
POLICY_REFUSALS = ("violates PodSecurity", "denied the request")


def deployment_failure(obj: Obj | None) -> str | None:
    """Why the Deployment OBJ gets no pods at all, as its controller reports it: a ReplicaFailure
    condition saying a policy refuses its pods (Pod Security admission, an admission webhook such
    as a policy engine's), or None. Other failures to create pass, since the controller retries
    them and they clear: a new namespace's ServiceAccount not made yet, a busy API server."""
    for cond in _status(obj or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True" \
                and any(refusal in (cond.get("message") or "") for refusal in POLICY_REFUSALS):
            name = ((obj or {}).get("metadata") or {}).get("name")
            return f"deployment {name} cannot create its pods: {cond.get('message') or cond.get('reason')}"
    return None


def daemonset_failure(name: str, events: list[Obj], since: float) -> str | None:
    """Why the DaemonSet NAME gets no pods, from the events of its namespace about it (EVENTS):
    a FailedCreate since SINCE (an earlier run's stays an hour) whose message says a policy
    refuses its pods (see deployment_failure), or None."""
    for event in events:
        involved = event.get("involvedObject") or {}
        message = event.get("message") or ""
        last = _timestamp(event.get("lastTimestamp") or event.get("eventTime")
                          or (event.get("metadata") or {}).get("creationTimestamp"))
        if involved.get("kind") == "DaemonSet" and involved.get("name") == name and event.get("reason") == "FailedCreate" \
                and last is not None and last >= int(since) and any(refusal in message for refusal in POLICY_REFUSALS):
            return f"daemonset {name} cannot create its pods: {message.removeprefix('Error creating: ')}"
    return None


def daemonset_ready(obj: Obj) -> bool:
    """Whether the DaemonSet runs a ready pod of its latest template on every node it should."""
    status = _status(obj)
    desired = status.get("desiredNumberScheduled") or 0
    return desired > 0 and _generation_observed(obj) and (status.get("numberReady") or 0) == desired \
        and (status.get("updatedNumberScheduled") or 0) == desired


def node_ready(obj: Obj) -> bool:
    return _condition_true(obj, "Ready")


def crd_established(obj: Obj) -> bool:
    return _condition_true(obj, "Established")


# On a lab's Service whose pods are meant never to be ready: the lab does not wait for them.
NEVER_READY = "svclab.io/never-ready"


def endpoints_ready(services: list[Obj], slices: list[Obj]) -> bool:
    """Whether every Service with a selector among SERVICES has a ready endpoint in SLICES (a
    Service annotated svclab.io/never-ready: "true" aside)."""
    served = {(sl.get("metadata", {}).get("labels") or {}).get("kubernetes.io/service-name")
              for sl in slices
              if any((ep.get("conditions") or {}).get("ready") is True for ep in sl.get("endpoints") or [])}
    return all(svc["metadata"]["name"] in served for svc in services if (svc.get("spec") or {}).get("selector")
               and ((svc.get("metadata") or {}).get("annotations") or {}).get(NEVER_READY) != "true")


def _timestamp(value: str | None) -> float | None:
    """Seconds since the epoch of an API timestamp ("2026-12-01T23:05:41Z")."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def broken_pod_reason(pods: list[Obj], since: float, *, now: float) -> str | None:
    """A reason no amount of waiting will fix (an image that cannot be pulled, a crash loop, a pod
    no node takes), among PODS created after SINCE (older ones may be on their way out in a
    rollout). NOW is the current time, for how long a pod has been unschedulable."""
    for pod in pods:
        meta, status = pod.get("metadata") or {}, _status(pod)
        created = _timestamp(meta.get("creationTimestamp"))
        # Creation times have whole seconds: a pod made in the same second as SINCE counts.
        if meta.get("deletionTimestamp") or (created is not None and created < since - 1):
            continue
        name = meta.get("name")
        for cond in status.get("conditions") or []:
            changed = _timestamp(cond.get("lastTransitionTime"))
            stuck = now - changed if changed is not None else 0
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable" \
                    and stuck > UNSCHEDULABLE_GRACE:
                return f"pod {name} cannot be scheduled: {cond.get('message')}"
        for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in IMAGE_FAILURES:
                return f"pod {name}: {reason} ({cs.get('image')})"
            if reason == "CrashLoopBackOff" and (cs.get("restartCount") or 0) >= CRASH_RESTARTS:
                return f"pod {name}: container {cs.get('name')} keeps crashing"
    return None
