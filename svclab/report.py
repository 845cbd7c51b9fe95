"""Rendering results: pure functions from results to a terminal table and versioned JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import EXIT_MISMATCH, EXIT_OK
from .labs import Result

__all__ = ["JSON_VERSION", "exit_code", "render_table", "to_json", "summary"]

JSON_VERSION = 1


def exit_code(results: Sequence[Result]) -> int:
    return EXIT_OK if results and all(r.passed for r in results) else EXIT_MISMATCH


def summary(results: Sequence[Result]) -> dict[str, int]:
    passed = sum(r.passed for r in results)
    return {"probes": len(results), "passed": passed, "failed": len(results) - passed}


def render_table(results: Sequence[Result], console: Console, *, title: str = "") -> None:
    table = Table(title=title or None, show_lines=True, expand=False)
    table.add_column("claim", no_wrap=True)
    table.add_column("path")
    table.add_column("expected")
    table.add_column("observed")
    table.add_column("evidence")
    table.add_column("verdict", no_wrap=True)
    for r in results:
        verdict = Text("as expected", style="green") if r.passed else Text("DIFFERS", style="bold red")
        evidence = "\n".join(r.evidence + ([f"differs: {p}" for p in r.problems] if not r.passed else []))
        table.add_row(r.claim, f"{r.lab}: {r.path}", r.expected, r.observed, Text(evidence), verdict)
    console.print(table)
    s = summary(results)
    style = "green" if s["failed"] == 0 and s["probes"] else "red"
    console.print(Text(f"{s['passed']}/{s['probes']} probes as expected", style=style))


def to_json(results: Sequence[Result], *, context: dict[str, Any]) -> str:
    return json.dumps({
        "version": JSON_VERSION,
        **context,
        "summary": summary(results),
        "results": [dataclasses.asdict(r) for r in results],
    }, indent=2, default=str)
