"""What to look at when a lab differs: a folder with the lab namespaces' events, Services, pods
and EndpointSlices, the nodes, the load-balancer controllers' and kube-proxy's logs and
resources, and kind's node logs on a cluster svclab made (on another cluster, what was detected
there instead: no kind is involved)."""

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
    kube = env.kube

    def part(name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - diagnostics never hide the failure they describe
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")

    def dump_list(path: Path, api_version: str, kind: str, namespace: str) -> None:
        _dump(path, {"items": kube.list(api_version, kind, namespace)})

    namespaces = [ns["metadata"]["name"] for ns in kube.list("v1", "Namespace")
                  if ns["metadata"]["name"].startswith("svclab-") or ns["metadata"]["name"] in CONTROLLER_NAMESPACES]
    for ns in namespaces:
        for file, api_version, kind in (("events", "v1", "Event"), ("services", "v1", "Service"), ("pods", "v1", "Pod"),
                                        ("endpointslices", "discovery.k8s.io/v1", "EndpointSlice")):
            part(f"{ns} {file}", lambda ns=ns, file=file, api_version=api_version, kind=kind:
                 dump_list(dest / ns / f"{file}.json", api_version, kind, ns))
    for ns in ("metallb-system", "kube-system"):
        def logs(ns=ns):
            for pod in kube.list("v1", "Pod", ns):
                name = pod["metadata"]["name"]
                if ns == "kube-system" and not name.startswith(("kube-vip", "kube-proxy", "podnet")):
                    continue
                for container in pod["spec"]["containers"]:
                    text = kube.pod_log(name, ns, container=container["name"], tail_lines=500)
                    (dest / ns / "logs").mkdir(parents=True, exist_ok=True)
                    (dest / ns / "logs" / f"{name}.{container['name']}.log").write_text(text)

        part(f"{ns} logs", logs)

    def lb_resources():
        for kind, file in (("IPAddressPool", "ipaddresspools"), ("L2Advertisement", "l2advertisements"),
                           ("ServiceL2Status", "servicel2statuses")):
            dump_list(dest / "metallb-system" / f"{file}.json", "metallb.io/v1beta1", kind, "metallb-system")

    if env.provider.name == "metallb":
        part("metallb resources", lb_resources)
    part("nodes", lambda: _dump(dest / "nodes.json", {"items": kube.list("v1", "Node")}))
    if env.target is None:
        part("kind export logs", lambda: Kind(env.settings).export_logs(dest / "kind-logs"))
    else:
        part("what was detected", lambda: _dump(dest / "detected.json", env.target.detected.as_dict()))
    if errors:
        (dest / "errors.txt").write_text("\n".join(errors) + "\n")
    return dest


def collect_or_none(env, dest_root: Path) -> Path | None:
    try:
        return collect(env, dest_root)
    except (SvclabError, OSError):
        return None
