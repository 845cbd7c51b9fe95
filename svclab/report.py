"""Rendering results: pure functions from results to a terminal table and versioned JSON."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from .errors import EXIT_MISMATCH, EXIT_OK
from .labs import Result

__all__ = ["JSON_VERSION", "claims_markdown", "to_junit", "to_markdown", "comparison_rows", "exit_code", "render_blocks", "render_comparison", "render_table", "to_json", "summary"]

JSON_VERSION = 1


def exit_code(results: Sequence[Result]) -> int:
    return EXIT_OK if results and all(r.passed for r in results) else EXIT_MISMATCH


def summary(results: Sequence[Result]) -> dict[str, int]:
    passed = sum(r.passed for r in results)
    return {"probes": len(results), "passed": passed, "failed": len(results) - passed}


def render_table(results: Sequence[Result], console: Console, *, title: str = "") -> None:
    """The results as a table, or, where the console is too narrow for the table's longest words
    (an address, a node or a pod name would be cut), as one block per probe."""
    rows = [_row(r) for r in results]
    if _narrowest_table(rows) > console.width:
        render_blocks(results, console, title=title)
    else:
        console.print(_table(rows, title))
    s = summary(results)
    style = "green" if s["failed"] == 0 and s["probes"] else "red"
    console.print(Text(f"{s['passed']}/{s['probes']} probes as expected", style=style))


def render_blocks(results: Sequence[Result], console: Console, *, title: str = "") -> None:
    """One block per probe, every line whole (long lines wrap, nothing is cut)."""
    if title:
        console.print(Text(title, style="bold"))
    for r in results:
        console.print()
        mark = Text("✓ as expected", style="green") if r.passed else Text("✗ DIFFERS", style="bold red")
        console.print(Text.assemble(mark, f"  {r.claim} {r.lab}: {r.path}"))
        console.print(Text(f"  expected: {r.expected}"))
        console.print(Text(f"  observed: {r.observed}"))
        for line in r.evidence:
            console.print(Text(f"  · {line}"))
        for problem in (r.problems if not r.passed else []):
            console.print(Text(f"  differs: {problem}", style="red"))
    console.print()


COLUMNS = ("claim", "path", "expected", "observed", "evidence", "verdict")


def _row(r: Result) -> tuple[str, ...]:
    evidence = "\n".join(r.evidence + ([f"differs: {p}" for p in r.problems] if not r.passed else []))
    return (r.claim, f"{r.lab}: {r.path}", r.expected, r.observed, evidence, "as expected" if r.passed else "DIFFERS")


def _longest_words(rows: Sequence[tuple[str, ...]]) -> list[int]:
    return [max(cell_len(word) for cell in column for word in (cell.split() or [""]))
            for column in zip(COLUMNS, *rows)]


def _narrowest_table(rows: Sequence[tuple[str, ...]]) -> int:
    """The width below which the table would have to cut a word: per column its longest word
    (header included) plus one space each side, plus the borders."""
    return sum(width + 2 for width in _longest_words(rows)) + len(COLUMNS) + 1


def _table(rows: Sequence[tuple[str, ...]], title: str) -> Table:
    table = Table(title=title or None, show_lines=True, expand=False)
    for column, longest in zip(COLUMNS, _longest_words(rows)):
        table.add_column(column, no_wrap=column in ("claim", "verdict"), min_width=longest)
    for *cells, verdict in rows:
        style = "green" if verdict == "as expected" else "bold red"
        table.add_row(*cells[:4], Text(cells[4]), Text(verdict, style=style))
    return table


def to_json(results: Sequence[Result], *, context: dict[str, Any]) -> str:
    return json.dumps({
        "version": JSON_VERSION,
        **context,
        "summary": summary(results),
        "results": [dataclasses.asdict(r) for r in results],
    }, indent=2, default=str)


def to_junit(results: Sequence[Result]) -> str:
    """JUnit XML: one suite per lab, one case per probe; a probe that differs is a failure."""
    root = ET.Element("testsuites", name="svclab", tests=str(len(results)),
                      failures=str(sum(not r.passed for r in results)))
    for lab in dict.fromkeys(r.lab for r in results):
        mine = [r for r in results if r.lab == lab]
        suite = ET.SubElement(root, "testsuite", name=lab, tests=str(len(mine)),
                              failures=str(sum(not r.passed for r in mine)),
                              time=f"{sum(r.seconds for r in mine):.2f}")
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"svclab.{lab}", name=f"{r.claim} {r.probe}",
                                 time=f"{r.seconds:.2f}")
            if not r.passed:
                failure = ET.SubElement(case, "failure", message="; ".join(r.problems))
                failure.text = f"expected: {r.expected}\nobserved: {r.observed}\n" + "\n".join(r.evidence)
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(r.evidence)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def to_markdown(results: Sequence[Result], *, title: str) -> str:
    s = summary(results)
    lines = [f"### {title}", "", f"**{s['passed']}/{s['probes']} probes as expected**", "",
             "| claim | path | expected | observed | verdict |", "|---|---|---|---|---|"]
    for r in results:
        verdict = "✅ as expected" if r.passed else "❌ differs: " + _md("; ".join(r.problems))
        lines.append(f"| {r.claim} | {_md(r.lab + ': ' + r.path)} | {_md(r.expected)} | {_md(r.observed)} | {verdict} |")
    return "\n".join(lines) + "\n"


def _facts(doc: dict, lab: str, probe: str) -> dict | None:
    for r in doc.get("results", []):
        if r["lab"] == lab and r["probe"] == probe:
            return r.get("facts") or {}
    return None


def _sources(facts: dict | None) -> str:
    if facts is None:
        return "not run"
    kinds = sorted(set(facts.get("source_kinds") or []))
    return ", ".join(kinds) if kinds else "no answer"


COMPARISON_COLUMNS = ("provider", "address assigned", "reachable on :80", "source (Cluster)",
                      "source (Local)", "health check per node", "failover", "BGP next hops",
                      "BGP withdrawal", "HAProxy UP (Local)", "HAProxy mark-down", "DNS RR first-try failures")


def _short(node: str) -> str:
    return node.rsplit("-", 1)[-1]


def _seconds(facts: dict | None, key: str, absent: str = "none") -> str:
    if facts is None:
        return "not run"
    return f"{facts[key]}s" if facts.get(key) is not None else absent


def comparison_rows(docs: Sequence[dict]) -> list[dict[str, str]]:
    """One row per provider from JSON result documents (``svclab lab.all --json``)."""
    rows = []
    for doc in docs:
        address = _facts(doc, "loadbalancer", "external-address")
        reach = _facts(doc, "loadbalancer", "port-80-at-external-address")
        health = _facts(doc, "traffic-policy", "health-check-per-node")
        failover = _facts(doc, "failover", "holder-fails")
        bgp = _facts(doc, "bgp", "router-learns-the-address")
        haproxy = _facts(doc, "external-lb", "haproxy-checks-local")
        dns = _facts(doc, "dns-round-robin", "node-cut-off")
        rows.append({
            "provider": doc.get("provider", "?"),
            "address assigned": "not run" if address is None else (address.get("value") or "<pending>"),
            "reachable on :80": "not run" if reach is None else ("yes" if reach.get("answered_targets") else "no"),
            "source (Cluster)": _sources(_facts(doc, "traffic-policy", "cluster-policy-lb-hides-client")),
            "source (Local)": _sources(_facts(doc, "traffic-policy", "local-policy-lb-keeps-client")),
            "health check per node": "not run" if health is None else
                " ".join(f"{node.rsplit('-', 1)[-1]}:{code}" for node, code in sorted(health.get("codes", {}).items())),
            "failover": _seconds(failover, "failover_seconds"),
            "BGP next hops": "not run" if bgp is None else
                (" ".join(_short(n) for n in bgp.get("next_hops") or []) or "none"),
            "BGP withdrawal": _seconds(_facts(doc, "bgp", "node-withdrawn"), "withdrawn_after"),
            "HAProxy UP (Local)": "not run" if haproxy is None else
                (" ".join(_short(n) for n, s in sorted((haproxy.get("status") or {}).items()) if s == "UP") or "none"),
            "HAProxy mark-down": _seconds(_facts(doc, "external-lb", "node-cut-off"), "marked_down_after"),
            "DNS RR first-try failures": "not run" if dns is None else
                f"{dns.get('first_failed', 0)}/{len(dns.get('attempts') or [])}",
        })
    return rows


def render_comparison(docs: Sequence[dict], console: Console) -> None:
    table = Table(title="load-balancer providers compared", show_lines=False)
    for column in COMPARISON_COLUMNS:
        table.add_column(column)
    for row in comparison_rows(docs):
        table.add_row(*(row[c] for c in COMPARISON_COLUMNS))
    console.print(table)


def claim_text(entry: Any) -> str:
    """A claims.yaml entry's claim: the text itself, or its ``claim`` key."""
    return str(entry.get("claim", "") if isinstance(entry, dict) else entry)


def claim_providers(entry: Any) -> tuple[str, ...]:
    """The providers whose runs can evidence a claims.yaml entry (its ``providers`` key; empty: all)."""
    return tuple(entry.get("providers") or ()) if isinstance(entry, dict) else ()


def claims_markdown(claims: dict[str, Any], docs: Sequence[dict]) -> str:
    """The claims table, each claim marked from live results: held (every probe for it held, on
    every provider it ran on), not held (one differed), or not shown (no probe ran for it). A claim
    about one implementation (``providers`` in claims.yaml) counts only that implementation's runs."""
    lines = ["| id | claim | verdict | observed |", "|---|---|---|---|"]
    for cid, entry in claims.items():
        providers = claim_providers(entry)
        runs = [(doc.get("provider", "?"), r) for doc in docs for r in doc.get("results", [])
                if r["claim"] == cid and (not providers or doc.get("provider") in providers)]
        if not runs:
            verdict, observed = "not shown", f"(needs a run with {', '.join(providers)})" if providers else ""
        else:
            verdict = "held" if all(r["passed"] for _, r in runs) else "**not held**"
            observed = "; ".join(f"{p}: {r['observed']}" for p, r in runs[:4]) + (" …" if len(runs) > 4 else "")
        lines.append(f"| {cid} | {_md(claim_text(entry))} | {verdict} | {_md(observed)} |")
    return "\n".join(lines) + "\n"
