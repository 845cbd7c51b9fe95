"""The key diagram of a run as a Mermaid flowchart, for the Markdown summary (GitHub renders a
```mermaid block): one lab's cluster as observed, its nodes with their pods, the clients and the
load-balancer addresses, and an arrow for every hop a probe's traffic took, red where one of the
probes that took it differed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["KEY_LABS", "flowchart", "key_flowchart"]

# The lab whose diagram tells most about a run, first found wins.
KEY_LABS = ("loadbalancer", "traffic-policy", "nodeport")


def _id(place: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", place)


def _text(text: str) -> str:
    return text.replace('"', "#quot;")


def flowchart(lab) -> str:
    """LAB (an html_report.LabView) as a Mermaid flowchart."""
    view = lab.cluster
    client = f"<br>{view.client_ip}" if view.client_ip else ""
    lines = ["flowchart LR", f'  {_id("outside")}["outside client{client}"]']
    used = {p for probe in lab.probes for leg in probe.path.legs for p in leg.places}
    if "pod-client" in used:
        address = f"<br>{view.client_pod_ip}" if view.client_pod_ip else ""
        lines.append(f'  {_id("pod-client")}["in-cluster client{address}"]')
    if "svc" in used:
        lines.append(f'  {_id("svc")}(["ClusterIP / DNS name"])')
    for place, label in view.edges:
        lines.append(f'  {_id(place)}["{_text(label)}"]')
    for ip, holder in view.lbs:
        if f"lb:{ip}" in used:
            lines.append(f'  {_id("lb:" + ip)}{{{{"load balancer {ip}"}}}}')
    runs_on = []   # (node, pod): a dotted line says where a pod runs
    for node in view.nodes:
        lines.append(f'  {_id("node:" + node.name)}["node {_text(node.name)}<br>{node.ip}"]')
        for pod in node.pods:
            if f"pod:{pod}" in used:
                lines.append(f'  {_id("pod:" + pod)}(["pod {_text(pod)}"])')
                runs_on.append((f"node:{node.name}", f"pod:{pod}"))
    known = {"outside", "pod-client", "svc"} | {p for p, _ in view.edges} | {f"lb:{ip}" for ip, _ in view.lbs} \
        | {f"node:{n.name}" for n in view.nodes} | {f"pod:{p}" for n in view.nodes for p in n.pods}
    hops: dict[tuple[str, str], bool] = {}
    for probe in lab.probes:
        for leg in probe.path.legs:
            places = [p for p in leg.places if p in known]
            for a, b in zip(places, places[1:]):
                hops[(a, b)] = hops.get((a, b), True) and probe.passed
    for i, ((a, b), passed) in enumerate(hops.items()):
        lines.append(f"  {_id(a)} --> {_id(b)}")
        lines.append(f"  linkStyle {i} stroke:{'#1a7f37' if passed else '#cf222e'},stroke-width:2px")
    lines += [f"  {_id(node)} -.- {_id(pod)}" for node, pod in runs_on if (node, pod) not in hops]
    return "\n".join(lines) + "\n"


def key_flowchart(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    """(the lab, its flowchart) for the run DOC: the first of KEY_LABS it ran, else its first lab
    with traffic; None when no probe sent any."""
    from .html_report import lab_views

    views = [v for v in lab_views(doc, titles=False) if any(p.path.traffic for p in v.probes)]
    if not views:
        return None
    chosen = next((v for name in KEY_LABS for v in views if v.lab == name), views[0])
    return chosen.lab, flowchart(chosen)
