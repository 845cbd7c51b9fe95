"""What to look at when a lab differs: a folder with kind's node logs, the lab namespaces'
events, Services and EndpointSlices, and the load-balancer controllers' logs and resources."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .cluster import Kind
from .errors import SvclabError

__all__ = ["collect"]

CONTROLLER_NAMESPACES = ("metallb-system", "kube-system", "svclab-system")


def _dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def collect(env, dest_root: Path) -> Path:
    """Writes diagnostics for ENV's cluster under DEST_ROOT; returns the folder. Best effort:
    each part that fails is recorded in errors.txt instead of stopping the rest."""
    dest = dest_root / f"svclab-diagnostics-{env.settings.cluster_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    api, core = env.kube.api, env.kube.core
    ser = api.sanitize_for_serialization

    def part(name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - diagnostics never hide the failure they describe
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")

    namespaces = [ns.metadata.name for ns in core.list_namespace().items
                  if ns.metadata.name.startswith("svclab-") or ns.metadata.name in CONTROLLER_NAMESPACES]
    for ns in namespaces:
        part(f"{ns} events", lambda ns=ns: _dump(dest / ns / "events.json", ser(core.list_namespaced_event(ns))))
        part(f"{ns} services", lambda ns=ns: _dump(dest / ns / "services.json", ser(core.list_namespaced_service(ns))))
        part(f"{ns} pods", lambda ns=ns: _dump(dest / ns / "pods.json", ser(core.list_namespaced_pod(ns))))

        def slices(ns=ns):
            from kubernetes import client

            _dump(dest / ns / "endpointslices.json",
                  ser(client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(ns)))

        part(f"{ns} endpointslices", slices)
    for ns in ("metallb-system", "kube-system"):
        def logs(ns=ns):
            for pod in core.list_namespaced_pod(ns).items:
                if ns == "kube-system" and not pod.metadata.name.startswith(("kube-vip", "kube-proxy", "podnet")):
                    continue
                for container in pod.spec.containers:
                    text = core.read_namespaced_pod_log(pod.metadata.name, ns, container=container.name, tail_lines=500)
                    (dest / ns / "logs").mkdir(parents=True, exist_ok=True)
                    (dest / ns / "logs" / f"{pod.metadata.name}.{container.name}.log").write_text(text)

        part(f"{ns} logs", logs)

    def lb_resources():
        from kubernetes import client

        custom = client.CustomObjectsApi(api)
        for plural in ("ipaddresspools", "l2advertisements", "servicel2statuses"):
            _dump(dest / "metallb-system" / f"{plural}.json",
                  custom.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", plural))

    if env.provider.name == "metallb":
        part("metallb resources", lb_resources)
    part("kind export logs", lambda: Kind(env.settings).export_logs(dest / "kind-logs"))
    if errors:
        (dest / "errors.txt").write_text("\n".join(errors) + "\n")
    return dest


def collect_or_none(env, dest_root: Path) -> Path | None:
    try:
        return collect(env, dest_root)
    except (SvclabError, OSError):
        return None
