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

__all__ = ["JSON_VERSION", "BEHAVIOURS", "MatrixRow", "behaviours", "claims_markdown", "to_junit", "to_markdown",
           "comparison_rows", "exit_code", "mode_disagreements", "render_blocks", "render_comparison", "render_table",
           "run_label", "run_labels", "to_json", "summary"]

JSON_VERSION = 1


def exit_code(results: Sequence[Result], skipped: Sequence[Any] = ()) -> int:
    """0 when every probe that ran was as expected (and one ran, or every probe was skipped with its reason)."""
    return EXIT_OK if (results or skipped) and all(r.passed for r in results) else EXIT_MISMATCH


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


def render_skipped(skipped: Sequence[Any], console: Console) -> None:
    """The probes that did not run (plan.Skip), once per reason: "skipped 3 probes: why" and their ids."""
    by_reason: dict[str, list[str]] = {}
    for skip in skipped:
        by_reason.setdefault(skip.reason, []).append(f"{skip.lab}/{skip.probe}")
    for reason, keys in by_reason.items():
        console.print(Text(f"skipped {len(keys)} probe{'s' if len(keys) > 1 else ''}: {reason}", style="yellow"))
        console.print(Text("  " + ", ".join(keys), style="dim"))


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
    """Per column of ROWS, the width of its longest word."""
    return [max(cell_len(word) for cell in column for word in (cell.split() or [""])) for column in zip(*rows)]


def _table_width(widths: Sequence[int]) -> int:
    """A boxed table's width with columns of WIDTHS: one space each side of each, and the borders."""
    return sum(width + 2 for width in widths) + len(widths) + 1


def _narrowest_table(rows: Sequence[tuple[str, ...]]) -> int:
    """The width below which the table would have to cut a word: per column its longest word
    (header included) plus one space each side, plus the borders."""
    return _table_width(_longest_words([COLUMNS, *rows]))


def _table(rows: Sequence[tuple[str, ...]], title: str) -> Table:
    table = Table(title=title or None, show_lines=True, expand=False)
    for column, longest in zip(COLUMNS, _longest_words([COLUMNS, *rows])):
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


def to_junit(results: Sequence[Result], skipped: Sequence[Any] = ()) -> str:
    """JUnit XML: one suite per lab, one case per probe; a probe that differs is a failure, one
    that could not run on this cluster (plan.Skip) is skipped with its reason."""
    root = ET.Element("testsuites", name="svclab", tests=str(len(results) + len(skipped)),
                      failures=str(sum(not r.passed for r in results)), skipped=str(len(skipped)))
    for lab in dict.fromkeys([*(r.lab for r in results), *(s.lab for s in skipped)]):
        mine = [r for r in results if r.lab == lab]
        theirs = [s for s in skipped if s.lab == lab]
        suite = ET.SubElement(root, "testsuite", name=lab, tests=str(len(mine) + len(theirs)),
                              failures=str(sum(not r.passed for r in mine)), skipped=str(len(theirs)),
                              time=f"{sum(r.seconds for r in mine):.2f}")
        for s in theirs:
            case = ET.SubElement(suite, "testcase", classname=f"svclab.{lab}", name=f"{s.claim} {s.probe}", time="0")
            ET.SubElement(case, "skipped", message=s.reason)
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


def to_markdown(results: Sequence[Result], *, title: str, doc: dict | None = None, html: str | None = None) -> str:
    """The summary: a table of the probes; with DOC (the results document) the key lab's cluster
    as a Mermaid flowchart, with HTML a link to the HTML report written beside it."""
    s = summary(results)
    lines = [f"### {title}", "", f"**{s['passed']}/{s['probes']} probes as expected**", ""]
    if html:
        lines += [f"Every probe's path, drawn on each lab's cluster: [{html}]({html})", ""]
    if doc is not None:
        from .mermaid import key_flowchart

        if key := key_flowchart(doc):
            lines += [f"lab {key[0]}: the cluster as observed and the probes' paths (red: a probe differed)", "",
                      "```mermaid", key[1].rstrip("\n"), "```", ""]
    lines += ["| claim | path | expected | observed | verdict |", "|---|---|---|---|---|"]
    for r in results:
        verdict = "✅ as expected" if r.passed else "❌ differs: " + _md("; ".join(r.problems))
        lines.append(f"| {r.claim} | {_md(r.lab + ': ' + r.path)} | {_md(r.expected)} | {_md(r.observed)} | {verdict} |")
    return "\n".join(lines) + "\n"


def _facts(doc: dict, lab: str, probe: str) -> dict | None:
    for r in doc.get("results", []):
        if r.get("lab") == lab and r.get("probe") == probe:
            return r.get("facts") or {}
    return None


def _sources(facts: dict | None) -> str:
    if facts is None:
        return "not run"
    kinds = sorted(set(facts.get("source_kinds") or []))
    return ", ".join(kinds) if kinds else "no answer"


# What the providers' runs show side by side, one row each (the runs are the columns).
BEHAVIOURS = ("address assigned", "reachable on :80", "source (Cluster)", "source (Local)",
              "health check per node", "failover", "BGP next hops", "BGP withdrawal", "HAProxy UP (Local)",
              "HAProxy mark-down", "DNS RR first-try failures")
HELD, DIFFERED, NOT_RUN = "held", "DIFFERED", "—"


def _short(node: str) -> str:
    return node.rsplit("-", 1)[-1]


def _seconds(facts: dict | None, key: str, absent: str = "none") -> str:
    if facts is None:
        return "not run"
    return f"{facts[key]}s" if facts.get(key) is not None else absent


def behaviours(doc: dict) -> dict[str, str]:
    """Each of BEHAVIOURS as one results document (``svclab lab.all --json``) shows it."""
    address = _facts(doc, "loadbalancer", "external-address")
    reach = _facts(doc, "loadbalancer", "port-80-at-external-address")
    health = _facts(doc, "traffic-policy", "health-check-per-node")
    bgp = _facts(doc, "bgp", "router-learns-the-address")
    haproxy = _facts(doc, "external-lb", "haproxy-checks-local")
    dns = _facts(doc, "dns-round-robin", "node-cut-off")
    return {
        "address assigned": "not run" if address is None else (address.get("value") or "<pending>"),
        "reachable on :80": "not run" if reach is None else ("yes" if reach.get("answered_targets") else "no"),
        "source (Cluster)": _sources(_facts(doc, "traffic-policy", "cluster-policy-lb-hides-client")),
        "source (Local)": _sources(_facts(doc, "traffic-policy", "local-policy-lb-keeps-client")),
        "health check per node": "not run" if health is None else
            " ".join(f"{_short(node)}:{code}" for node, code in sorted(health.get("codes", {}).items())),
        "failover": _seconds(_facts(doc, "failover", "holder-fails"), "failover_seconds"),
        "BGP next hops": "not run" if bgp is None else
            (" ".join(_short(n) for n in bgp.get("next_hops") or []) or "none"),
        "BGP withdrawal": _seconds(_facts(doc, "bgp", "node-withdrawn"), "withdrawn_after"),
        "HAProxy UP (Local)": "not run" if haproxy is None else
            (" ".join(_short(n) for n, s in sorted((haproxy.get("status") or {}).items()) if s == "UP") or "none"),
        "HAProxy mark-down": _seconds(_facts(doc, "external-lb", "node-cut-off"), "marked_down_after"),
        "DNS RR first-try failures": "not run" if dns is None else
            f"{dns.get('first_failed', 0)}/{len(dns.get('attempts') or [])}",
    }


def run_label(doc: dict) -> str:
    """A run's name: its provider, and its kube-proxy mode where the document records one
    (documents written before the mode was recorded show the provider alone)."""
    provider = str(doc.get("provider") or "?")
    mode = doc.get("kube_proxy_mode")
    return f"{provider}/{mode}" if mode else provider


def run_labels(docs: Sequence[dict]) -> list[str]:
    """Each document's run_label, a repeated one numbered ("metallb (2)") so every column is told apart."""
    labels, seen = [], {}
    for doc in docs:
        label = run_label(doc)
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return labels


@dataclasses.dataclass(frozen=True)
class MatrixRow:
    group: str               # "" for a behaviour, else the lab whose probe this is
    label: str               # the behaviour, or the probe as "<claim> <probe id>"
    cells: tuple[str, ...]   # one per run, in the documents' order


def _by_probe(doc: dict) -> dict[tuple[str, str], dict]:
    found: dict[tuple[str, str], dict] = {}
    for r in doc.get("results", []):
        found.setdefault((str(r.get("lab", "?")), str(r.get("probe", "?"))), r)
    return found


def _verdict(result: dict | None) -> str:
    return NOT_RUN if result is None else HELD if result.get("passed") else DIFFERED


def _probes(indexed: Sequence[dict[tuple[str, str], dict]]) -> list[tuple[tuple[str, str], str]]:
    """Every (lab, probe) any run has, with its claim id: grouped by lab, each lab and each
    probe in the order the runs first show them."""
    claims: dict[tuple[str, str], str] = {}
    for probes in indexed:
        for key, r in probes.items():
            if not claims.get(key):
                claims[key] = str(r.get("claim") or "")
    lab_order = {lab: i for i, lab in enumerate(dict.fromkeys(lab for lab, _ in claims))}
    return sorted(claims.items(), key=lambda item: lab_order[item[0][0]])


def comparison_rows(docs: Sequence[dict]) -> list[MatrixRow]:
    """The behaviour matrix of results documents: a row per behaviour, then a row per probe any
    of them ran (its verdict in each: held, DIFFERED, or — not run), grouped by lab."""
    shown = [behaviours(doc) for doc in docs]
    rows = [MatrixRow("", name, tuple(b[name] for b in shown)) for name in BEHAVIOURS]
    indexed = [_by_probe(doc) for doc in docs]
    for (lab, probe), claim in _probes(indexed):
        rows.append(MatrixRow(lab, f"{claim} {probe}".strip(), tuple(_verdict(p.get((lab, probe))) for p in indexed)))
    return rows


def mode_disagreements(docs: Sequence[dict]) -> list[str] | None:
    """One line per probe whose verdict differs between runs of one provider under different
    kube-proxy modes (the mode should change the rules, not the behaviour); None when no
    provider has runs under two modes, so there is nothing to set side by side. Runs whose
    document records no mode are left out of this."""
    labels = run_labels(docs)
    indexed = [_by_probe(doc) for doc in docs]
    by_provider: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        if doc.get("kube_proxy_mode"):
            by_provider.setdefault(str(doc.get("provider") or "?"), []).append(i)
    compared = [runs for runs in by_provider.values() if len({docs[i]["kube_proxy_mode"] for i in runs}) > 1]
    if not compared:
        return None
    lines = []
    for runs in compared:
        for (lab, probe), claim in _probes([indexed[i] for i in runs]):
            verdicts = [(labels[i], _verdict(indexed[i].get((lab, probe)))) for i in runs]
            ran = [(label, v) for label, v in verdicts if v != NOT_RUN]
            if len({v for _, v in ran}) > 1:
                lines.append(f"{lab} {claim + ' ' if claim else ''}{probe}: "
                             + ", ".join(f"{v} on {label}" for label, v in ran))
    return lines


AGREE = "verdicts agree across kube-proxy modes"


def _header(label: str) -> str:
    return label.replace("/", "\n", 1)   # provider over mode: narrow columns, 80 columns hold three runs


def _behaviour_table(labels: Sequence[str], rows: Sequence[MatrixRow], width: int) -> Table:
    cells = [("behaviour", *map(_header, labels)), *((row.label, *row.cells) for row in rows)]
    longest = _longest_words(cells)
    unwrapped = [max(cell_len(line) for cell in column for line in cell.splitlines() or [""]) for column in zip(*cells)]
    # Narrower than the table unwrapped but wide enough for each column's longest word: the runs'
    # columns are held at that width (rich would narrow every column evenly and cut an address).
    fixed = _table_width(unwrapped) > width >= _table_width(longest)
    table = Table(title="load-balancer providers compared")
    table.add_column("behaviour", overflow="fold", min_width=longest[0] if fixed else None)
    for label, longest_word in zip(labels, longest[1:]):
        table.add_column(_header(label), overflow="fold", width=longest_word if fixed else None)
    for row in rows:
        table.add_row(row.label, *row.cells)
    return table


def _verdict_table(labels: Sequence[str], rows: Sequence[MatrixRow]) -> Table:
    table = Table(title="probe verdicts (held: as the lab expects)")
    table.add_column("lab · claim probe", overflow="fold")
    for label in labels:
        table.add_column(_header(label), overflow="fold")
    style = {HELD: "green", DIFFERED: "bold red", NOT_RUN: "dim"}
    group = None
    for row in rows:
        if row.group != group:
            group = row.group
            table.add_row(Text(group, style="bold"), *([""] * len(labels)))
        table.add_row(f"  {row.label}", *(Text(cell, style=style.get(cell, "")) for cell in row.cells))
    return table


def render_comparison(docs: Sequence[dict], console: Console) -> None:
    """The matrix as two tables (behaviours; probe verdicts by lab), then the kube-proxy mode lines."""
    labels, rows = run_labels(docs), comparison_rows(docs)
    # Behaviours none of the runs' labs showed are left out (a comparison over a few labs).
    behaviours = [row for row in rows if not row.group and any(cell != "not run" for cell in row.cells)]
    if behaviours:
        console.print(_behaviour_table(labels, behaviours, console.width))
    console.print(_verdict_table(labels, [row for row in rows if row.group]))
    lines = mode_disagreements(docs)
    if lines is None:
        console.print(Text("kube-proxy modes: no provider was run under two of them here", style="dim"))
    elif not lines:
        console.print(Text(AGREE, style="green"))
    for line in lines or []:
        console.print(Text(f"differs across kube-proxy modes: {line}", style="bold red"))


def claim_text(entry: Any) -> str:
    """A claims.yaml entry's claim: the text itself, or its ``claim`` key."""
    return str(entry.get("claim", "") if isinstance(entry, dict) else entry)


def claim_providers(entry: Any) -> tuple[str, ...]:
    """The providers whose runs can evidence a claims.yaml entry (its ``providers`` key; empty: all)."""
    return tuple(entry.get("providers") or ()) if isinstance(entry, dict) else ()


def _across_modes(docs: Sequence[dict]) -> tuple[str, str]:
    """The verdict and observation of a claim shown by setting runs of one provider under
    different kube-proxy modes side by side (``across: kube_proxy_mode`` in claims.yaml)."""
    differing = mode_disagreements(docs)
    if differing is None:
        return "not shown", "(needs runs of one provider under two kube-proxy modes)"
    modes = sorted({str(doc["kube_proxy_mode"]) for doc in docs if doc.get("kube_proxy_mode")})
    if differing:
        return "**not held**", "; ".join(differing[:3]) + (" …" if len(differing) > 3 else "")
    probes = len({(r["lab"], r["probe"]) for doc in docs for r in doc.get("results", [])})
    return "held", f"{probes} probes, the same verdicts under {', '.join(modes)}"


def claims_markdown(claims: dict[str, Any], docs: Sequence[dict]) -> str:
    """The claims table, each claim marked from live results: held (every probe for it held, on
    every provider it ran on), not held (one differed), or not shown (no probe ran for it). A claim
    about one implementation (``providers`` in claims.yaml) counts only that implementation's runs;
    one shown across kube-proxy modes (``across``) is held when no verdict differs between them."""
    lines = ["| id | claim | verdict | observed |", "|---|---|---|---|"]
    for cid, entry in claims.items():
        providers = claim_providers(entry)
        runs = [(doc.get("provider", "?"), r) for doc in docs for r in doc.get("results", [])
                if r["claim"] == cid and (not providers or doc.get("provider") in providers)]
        if isinstance(entry, dict) and entry.get("across") == "kube_proxy_mode":
            verdict, observed = _across_modes(docs)
        elif not runs:
            verdict, observed = "not shown", f"(needs a run with {', '.join(providers)})" if providers else ""
        else:
            verdict = "held" if all(r["passed"] for _, r in runs) else "**not held**"
            observed = "; ".join(f"{p}: {r['observed']}" for p, r in runs[:4]) + (" …" if len(runs) > 4 else "")
        lines.append(f"| {cid} | {_md(claim_text(entry))} | {verdict} | {_md(observed)} |")
    return "\n".join(lines) + "\n"
