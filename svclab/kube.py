"""Talking to the cluster: server-side apply under svclab's own field manager and label, and waits
on state with deadlines that fail early when something is clearly broken."""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.config import kube_config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

from . import __version__, readiness
from .cancel import Cancel, WaitCancelled, bound_cancel
from .errors import SvclabError

__all__ = ["Kube", "MANAGED_BY", "FIELD_MANAGER", "api_error_message", "load_manifests", "pause_of", "poll", "wait_until",
           "WaitTimeout", "WaitCancelled"]

FIELD_MANAGER = "svclab"
MANAGED_BY = {"app.kubernetes.io/managed-by": "svclab"}
MANAGED_SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
# Applied first (and deleted last): what other objects need to exist or be understood.
_KIND_ORDER = ("CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "Role",
               "ClusterRoleBinding", "RoleBinding", "ConfigMap", "Secret")

T = TypeVar("T")


class WaitTimeout(SvclabError):
    pass


def pause_of(cancel: Cancel | None) -> Callable[[float], None]:
    """How a wait sleeps between rounds: until its operation is cancelled (CANCEL, else the token
    its thread's operation bound, see cancel.Workers), raising WaitCancelled then."""
    return (cancel or bound_cancel() or Cancel()).pause


def poll(observe: Callable[[], T], done: Callable[[T], bool], *, timeout: float,
         interval: float = 0.5, cancel: Cancel | None = None) -> tuple[T, int]:
    """Calls OBSERVE until DONE(its result) or TIMEOUT seconds have passed; returns the last
    result and the number of calls. Unlike wait_until, running out of time is not an error: the
    caller reports what it saw last. Raises WaitCancelled once CANCEL is set."""
    pause = pause_of(cancel)
    deadline = time.monotonic() + timeout
    calls = 0
    while True:
        calls += 1
        result = observe()
        if done(result) or time.monotonic() >= deadline:
            return result, calls
        pause(interval)


def wait_until(what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 0.25,
               fail: Callable[[], str | None] | None = None, cancel: Cancel | None = None) -> T:
    """Calls CHECK until it returns something other than None/False, at most TIMEOUT seconds.

    FAIL, when given, is asked each round for a reason to give up early (a crash-looping pod).
    Raises WaitCancelled once CANCEL is set.
    """
    pause = pause_of(cancel)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except (ApiException, DynamicApiError, OSError, urllib3.exceptions.HTTPError) as e:
            last_error = e
        if fail and (reason := fail()):
            raise SvclabError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            detail = f" (last error: {_short(last_error)})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        pause(interval)


def _short(e: Exception) -> str:
    if isinstance(e, ApiException):
        return f"{e.status} {e.reason}"
    return str(e).splitlines()[0][:200]


def load_manifests(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _apply_order(obj: dict[str, Any]) -> int:
    kind = obj.get("kind", "")
    return _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)


def is_managed(obj: dict[str, Any]) -> bool:
    """Whether OBJ carries svclab's label (svclab made it)."""
    return MANAGED_BY.items() <= ((obj.get("metadata") or {}).get("labels") or {}).items()


def _forget_removed_credentials() -> None:
    """The kubernetes client writes a certificate once per process and reuses that file; one whose
    folder has gone since (a target's state folder, removed after its run) is written again."""
    written = getattr(kube_config, "_temp_files", None)
    if isinstance(written, dict):
        for content, path in list(written.items()):
            if not os.path.exists(path):
                del written[content]


class Kube:
    """One cluster, reached through svclab's own kubeconfig file (or, for a cluster the user
    named, the user's file and CONTEXT in it, with the discovery cache in CACHE_DIR, svclab's).

    Objects go in and come out as plain dicts with the API's own camelCase field names (get,
    list, patch, apply, delete). They are the shape of the manifests svclab applies, of what
    `kubectl get -o json` shows and of what diagnostics dump, and what the rules of
    svclab.readiness judge, so nothing converts between shapes. The dynamic client carries them:
    it serves every kind the server knows, CRDs included, from one discovery cache kept beside the
    kubeconfig, where the typed client needs a class per API group, no class at all for CRDs, and
    sanitize_for_serialization wherever its objects become data. Responses skip the dynamic
    client's attribute wrapper (ResourceInstance) and stay parsed JSON; a read costs no more than
    the typed client's (measured on a kind cluster: a Service in 2.1-2.6 ms against 2.8-3.1 ms,
    median of 50).

    `api` (the API client the dynamic client sits on) remains for raw API paths (get_json: pod
    proxy and logs).
    """

    def __init__(self, kubeconfig: Path, *, context: str | None = None, cache_dir: Path | None = None):
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir or kubeconfig.parent
        # A kubeconfig's embedded certificates and key become files for the TLS library; the
        # kubernetes client removes them at exit, but a killed process leaves them behind: in
        # svclab's cluster folder, not the machine's temporary folder.
        _forget_removed_credentials()
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), context=context or None,
                                client_configuration=configuration,
                                temp_file_path=str(self.cache_dir / "credentials"))
        self.api = client.ApiClient(configuration=configuration)
        # The API server names the manager of a write that is not an apply after the User-Agent
        # (up to its '/'): every write of svclab's then shows as FIELD_MANAGER's in managedFields.
        self.api.user_agent = f"{FIELD_MANAGER}/{__version__}"
        self._dynamic: DynamicClient | None = None
        self._dynamic_lock = threading.Lock()   # `up` applies from several threads at once

    @property
    def dynamic(self) -> DynamicClient:
        with self._dynamic_lock:
            if self._dynamic is None:
                # Its discovery cache goes beside the kubeconfig (the kubernetes client's default
                # is a world-readable file in the temporary folder).
                self._dynamic = DynamicClient(self.api, cache_file=str(self.cache_dir / "discovery.json"))
            return self._dynamic

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        return bool(self._kind(api_version, kind).namespaced)

    def _resource(self, obj: dict[str, Any]):
        return self._kind(obj["apiVersion"], obj["kind"])

    def _kind(self, api_version: str, kind: str):
        """The dynamic client's resource for a kind, from its discovery cache (kept in memory and
        beside the kubeconfig, so a lookup costs microseconds)."""
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            # A CRD applied moments ago: refresh discovery once.
            self.dynamic.resources.invalidate_cache()
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    # ------------------------------------------------------------ reading and changing objects

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self._kind(api_version, kind).get(name=name, namespace=namespace, serializer=_plain)
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict[str, Any]]:
        """The objects of KIND in NAMESPACE (every namespace when None), each with its apiVersion
        and kind (the API server leaves them out of a list's items)."""
        listed = self._kind(api_version, kind).get(namespace=namespace, label_selector=label_selector,
                                                   field_selector=field_selector, serializer=_plain)
        items = listed.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def patch(self, api_version: str, kind: str, name: str, body: dict[str, Any],
              namespace: str | None = None) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386: maps merge, a list replaces the whole list, None deletes
        a field), which every kind accepts, CRDs included; returns the patched object."""
        return self._kind(api_version, kind).patch(body=body, name=name, namespace=namespace,
                                                   content_type="application/merge-patch+json", serializer=_plain)

    def patch_status(self, api_version: str, kind: str, name: str, body: dict[str, Any],
                     namespace: str | None = None) -> dict[str, Any]:
        """`patch` of the object's status subresource (what a controller writes: a Service's
        load-balancer address)."""
        return self._kind(api_version, kind).status.patch(body=body, name=name, namespace=namespace,
                                                          content_type="application/merge-patch+json",
                                                          serializer=_plain)

    def pod_log(self, name: str, namespace: str, *, container: str, tail_lines: int = 500) -> str:
        return self.get_json(f"/api/v1/namespaces/{namespace}/pods/{name}/log",
                             [("container", container), ("tailLines", str(tail_lines))], timeout=30)

    def apply(self, objects: Iterable[dict[str, Any]], *, namespace: str | None = None,
              dry_run: bool = False) -> list[dict[str, Any]]:
        """Server-side applies OBJECTS (CRDs and namespaces first), labelled as svclab's. The
        CRDs are applied together, then waited for together, before anything else."""
        applied = []
        objects = sorted(objects, key=_apply_order)
        crds = [obj for obj in objects if obj["kind"] == "CustomResourceDefinition"]
        if crds:
            applied += self._apply_each(crds, namespace, dry_run)
            if not dry_run:
                self.wait_crds_established([crd["metadata"]["name"] for crd in crds])
        rest = [obj for obj in objects if obj["kind"] != "CustomResourceDefinition"]
        return applied + self._apply_each(rest, namespace, dry_run)

    def _apply_each(self, objects: list[dict[str, Any]], namespace: str | None, dry_run: bool) -> list[dict[str, Any]]:
        applied = []
        for obj in objects:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("labels", {}).update(MANAGED_BY)
            resource = self._resource(obj)
            ns = meta.get("namespace") or (namespace if resource.namespaced else None)
            if resource.namespaced:
                meta["namespace"] = ns
            kwargs = {"dry_run": "All"} if dry_run else {}
            result = resource.server_side_apply(
                body=obj, name=meta["name"], namespace=ns,
                field_manager=FIELD_MANAGER, force_conflicts=True, serializer=_plain, **kwargs,
            )
            applied.append(result)
        return applied

    def delete(self, objects: Iterable[dict[str, Any]], *, namespace: str | None = None) -> None:
        """Deletes OBJECTS (reverse apply order), ignoring those already gone."""
        for obj in sorted(objects, key=_apply_order, reverse=True):
            resource = self._resource(obj)
            meta = obj.get("metadata", {})
            ns = meta.get("namespace") or (namespace if resource.namespaced else None)
            try:
                resource.delete(name=meta["name"], namespace=ns)
            except DynamicApiError as e:
                if e.status != 404:
                    raise

    def wait_service_endpoints(self, namespace: str, *, timeout: float) -> None:
        """Waits until every Service with a selector in NAMESPACE has a ready endpoint."""
        def ready():
            return readiness.endpoints_ready(self.list("v1", "Service", namespace),
                                             self.list("discovery.k8s.io/v1", "EndpointSlice", namespace))

        wait_until(f"Services in {namespace} to have ready endpoints", ready, timeout=timeout)

    def wait_crds_established(self, names: list[str], timeout: float = 60) -> None:
        waiting = set(names)

        def established():
            for name in sorted(waiting):
                crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                if crd is not None and readiness.crd_established(crd):
                    waiting.discard(name)
            return not waiting

        # Established comes within moments of the create; a short interval keeps `up` quick.
        wait_until(f"CRDs {', '.join(sorted(waiting))} to be established", established, timeout=timeout,
                   interval=0.1)

    def delete_namespace(self, name: str, *, timeout: float) -> None:
        ns = self.get("v1", "Namespace", name)
        if ns is None:
            return
        if not is_managed(ns):
            raise SvclabError(f"namespace {name} was not created by svclab; leaving it alone")
        self.delete([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
        wait_until(f"namespace {name} to be deleted", lambda: self.get("v1", "Namespace", name) is None,
                   timeout=timeout)

    def wait_deployment(self, namespace: str, name: str, *, timeout: float, since: float | None = None) -> None:
        """Waits until the Deployment is available; gives up early when it cannot create pods, or
        on a pod created after SINCE (default: now) that cannot start. A caller that applied the
        Deployment passes the time before its apply: its pods may be older than the wait
        (creation times have whole seconds)."""
        since = time.time() if since is None else since
        seen: list[dict[str, Any] | None] = [None]

        def available() -> bool:
            seen[0] = self.get("apps/v1", "Deployment", name, namespace)
            return seen[0] is not None and readiness.deployment_available(seen[0])

        wait_until(f"deployment {namespace}/{name} to be available", available, timeout=timeout,
                   fail=lambda: readiness.deployment_failure(seen[0]) or self.broken_pod_reason(namespace, since))

    def wait_daemonset(self, namespace: str, name: str, *, timeout: float, since: float | None = None) -> None:
        """Waits until the DaemonSet runs a ready pod on each of its nodes; gives up early when a
        policy refuses its pods (its controller's FailedCreate events say so: a DaemonSet has no
        condition for it), or on a pod created after SINCE (default: now) that cannot start."""
        since = time.time() if since is None else since
        wait_until(f"daemonset {namespace}/{name} to be ready",
                   lambda: self._judge("apps/v1", "DaemonSet", name, namespace, readiness.daemonset_ready),
                   timeout=timeout, fail=lambda: self._daemonset_failure(namespace, name, since)
                   or self.broken_pod_reason(namespace, since))

    def _daemonset_failure(self, namespace: str, name: str, since: float) -> str | None:
        try:
            events = self.list("v1", "Event", namespace, field_selector=f"involvedObject.name={name}")
        except (ApiException, OSError, urllib3.exceptions.HTTPError):
            return None
        return readiness.daemonset_failure(name, events, since)

    def _judge(self, api_version: str, kind: str, name: str, namespace: str,
               ready: Callable[[dict[str, Any]], bool]) -> bool:
        obj = self.get(api_version, kind, name, namespace)
        return obj is not None and ready(obj)

    def broken_pod_reason(self, namespace: str, since: float = 0.0) -> str | None:
        """See readiness.broken_pod_reason; None also when the pods cannot be listed."""
        try:
            pods = self.list("v1", "Pod", namespace)
        except (ApiException, OSError, urllib3.exceptions.HTTPError):
            return None
        return readiness.broken_pod_reason(pods, since, now=time.time())

    def wait_api_server(self, *, timeout: float) -> None:
        """Until the API server says it is ready (after a restart of Docker or of the nodes)."""
        wait_until("the API server to answer", lambda: self.get_json("/readyz", timeout=5).strip() == "ok",
                   timeout=timeout)

    def wait_nodes_ready(self, count: int, *, timeout: float) -> list[dict[str, Any]]:
        def ready():
            nodes = self.list("v1", "Node")
            return nodes if len(nodes) == count and all(map(readiness.node_ready, nodes)) else None

        return wait_until(f"{count} nodes to be Ready", ready, timeout=timeout)

    def exec(self, namespace: str, pod: str, argv: list[str], *, timeout: float = 30) -> tuple[int, str]:
        """Runs ARGV in POD (its first container), as `kubectl exec` does: (exit status, what it
        printed, stdout then stderr). The websocket call swaps its API client's request method
        while it runs, so it gets a client of its own rather than this one, which threads share."""
        from kubernetes import client as k8s
        from kubernetes.stream import stream

        api = k8s.ApiClient(self.api.configuration)
        api.user_agent = self.api.user_agent
        try:
            ws = stream(k8s.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, command=argv,
                        stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
        except ApiException as e:
            raise SvclabError(f"cannot run {argv[0]} in pod {namespace}/{pod}: {api_error_message(e)[:160]}") from None
        out, err = [], []
        deadline = time.monotonic() + timeout
        try:
            while ws.is_open():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SvclabError(f"`{' '.join(argv)}` in pod {namespace}/{pod} did not end within {timeout:g}s")
                ws.update(timeout=min(left, 1))
                if ws.peek_stdout():
                    out.append(ws.read_stdout())
                if ws.peek_stderr():
                    err.append(ws.read_stderr())
            try:
                code = ws.returncode
            except (KeyError, IndexError, TypeError, ValueError):   # a failure without an exit status
                code = 126                                           # (the command could not start)
        finally:
            ws.close()
        return (code if code is not None else 126), "".join(out) + "".join(err)

    def get_json(self, path: str, query: list[tuple[str, str]] | None = None, *, timeout: float = 10) -> str:
        """GET a raw API path (e.g. a pod proxy URL) and return the body as text."""
        response = self.api.call_api(
            path, "GET", query_params=query or [], auth_settings=["BearerToken"],
            _preload_content=False, _request_timeout=timeout,
        )
        data = response[0].data if isinstance(response, tuple) else response.data
        return data.decode()


def _plain(_client, data: dict[str, Any]) -> dict[str, Any]:
    """The dynamic client's response serializer that keeps the parsed JSON as it is."""
    return data


def api_error_message(e: Exception) -> str:
    """The API server's own message for a rejected request."""
    body = getattr(e, "body", None)
    if body:
        try:
            return json.loads(body).get("message", str(body))
        except (ValueError, AttributeError):
            return str(body)
    return str(e)
