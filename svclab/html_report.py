"""The HTML report: one self-contained page from results documents (``lab.all --json``): per run and
lab, the cluster as observed with every probe's path drawn on it, timelines where time is the
story, every probe's evidence one click away, and the claims table with each verdict linked to
its probes. This module builds the page's model; templates/report.html.j2 writes it out (styles
inline, no script, nothing fetched when the page is opened).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import __version__, report
from .diagram import Diagram, layout
from .observed_cluster import ClusterView, cluster_view, lb_addresses
from .probe_paths import ProbePath, probe_path
from .timelines import Timeline, timeline

__all__ = ["ProbeView", "LabView", "RunView", "ClaimRow", "Page", "lab_views", "build_page", "render_page",
           "claim_verdicts"]


@dataclasses.dataclass(frozen=True)
class ProbeView:
    key: str            # lab/probe
    anchor: str         # its id in the page
    number: int         # its number in the lab's diagram
    result: Mapping[str, Any]
    path: ProbePath
    facts_json: str

    @property
    def passed(self) -> bool:
        return bool(self.result.get("passed"))


@dataclasses.dataclass(frozen=True)
class LabView:
    lab: str
    title: str
    anchor: str
    cluster: ClusterView
    diagram: Diagram
    probes: tuple[ProbeView, ...]
    timelines: tuple[Timeline, ...]

    @property
    def passed(self) -> int:
        return sum(p.passed for p in self.probes)


@dataclasses.dataclass(frozen=True)
class RunView:
    index: int
    label: str
    doc: Mapping[str, Any]
    labs: tuple[LabView, ...]

    @property
    def summary(self) -> dict[str, int]:
        return self.doc.get("summary") or {}


@dataclasses.dataclass(frozen=True)
class ClaimRow:
    id: str
    text: str
    verdict: str        # held, not held, not shown: as report.claims_markdown derives it
    observed: str
    probes: tuple[tuple[str, str, bool], ...]   # (anchor, what to show, passed)

    @property
    def css(self) -> str:
        return self.verdict.replace(" ", "-")


@dataclasses.dataclass(frozen=True)
class Page:
    title: str
    version: str
    runs: tuple[RunView, ...]
    claims: tuple[ClaimRow, ...]


def _anchor(run: int, *parts: str) -> str:
    return "-".join([f"r{run}", *(re.sub(r"[^A-Za-z0-9_-]", "_", p) for p in parts)])


def _lab_title(lab: str) -> str:
    from . import labs

    try:
        return labs.load_lab(lab).title
    except Exception:  # noqa: BLE001 - a lab this checkout does not know still renders, untitled
        return ""


def lab_views(doc: Mapping[str, Any], run: int = 1, *, titles: bool = True) -> list[LabView]:
    """One view per lab of DOC, in the order its results list them."""
    by_lab: dict[str, list[Mapping[str, Any]]] = {}
    for r in doc.get("results", []):
        by_lab.setdefault(str(r.get("lab", "?")), []).append(r)
    views = []
    for lab, results in by_lab.items():
        seen = cluster_view(doc, lab, results)
        node_ips = {n.ip: n.name for n in seen.nodes if n.ip}
        node_ips.update({f"name:{n.name}": n.name for n in seen.nodes if not n.ip})   # names without an address
        addresses = lb_addresses(results)
        paths = [probe_path(r, nodes=node_ips, pods=seen.pods, lb_addresses=addresses, client_ip=seen.client_ip,
                            holders=dict(seen.lbs)) for r in results]
        seen = cluster_view(doc, lab, results, paths)
        probes = tuple(ProbeView(f"{lab}/{r.get('probe')}", _anchor(run, lab, str(r.get("probe"))), i, r, path,
                                 json.dumps(r.get("facts") or {}, indent=1, default=str))
                       for i, (r, path) in enumerate(zip(results, paths), start=1))
        diagram = layout(seen, [(p.key, p.passed, p.path) for p in probes])
        lines = tuple(t for p in probes if (t := timeline(p.key, p.result.get("facts") or {})))
        views.append(LabView(lab, _lab_title(lab) if titles else "", _anchor(run, lab), seen, diagram, probes, lines))
    return views


def claim_verdicts(claims: Mapping[str, Any], docs: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Claim id -> (verdict, observed), read from report.claims_markdown's table, so that the page
    and `report.claims` always agree on how a verdict is derived."""
    found = {}
    for line in report.claims_markdown(dict(claims), list(docs)).splitlines()[2:]:
        cells = [c.strip().replace("\\|", "|").replace("<br>", "\n") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4:
            found[cells[0]] = (cells[2].strip("*"), cells[3])
    return found


def _claim_rows(claims: Mapping[str, Any], runs: Sequence[RunView]) -> list[ClaimRow]:
    verdicts = claim_verdicts(claims, [run.doc for run in runs])
    rows = []
    for cid, entry in claims.items():
        linked = tuple((p.anchor, f"{run.label} · {p.key}", p.passed) for run in runs for lab in run.labs
                       for p in lab.probes if p.result.get("claim") == cid)
        verdict, observed = verdicts.get(cid, ("not shown", ""))
        rows.append(ClaimRow(cid, report.claim_text(entry), verdict, observed, linked))
    return rows


def build_page(docs: Sequence[Mapping[str, Any]], claims: Mapping[str, Any], *, titles: bool = True) -> Page:
    labels = report.run_labels(list(docs))
    runs = tuple(RunView(i, label, doc, tuple(lab_views(doc, i, titles=titles)))
                 for i, (label, doc) in enumerate(zip(labels, docs), start=1))
    title = "svclab report · " + ", ".join(labels)
    return Page(title, __version__, runs, tuple(_claim_rows(claims, runs)))


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("svclab", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["points"] = lambda pts: " ".join(f"{x:g},{y:g}" for x, y in pts)
    return env


def render_page(docs: Sequence[Mapping[str, Any]], claims: Mapping[str, Any], *, titles: bool = True) -> str:
    """The page for DOCS (results documents, one per run) and the claims table CLAIMS."""
    return _environment().get_template("report.html.j2").render(page=build_page(docs, claims, titles=titles))
