"""One lab run, from flags to exit code: the settings, the cluster (brought up if needed), the
labs (or, with --step, one probe at a time), the results table, the JSON/JUnit/Markdown/HTML files
and $GITHUB_STEP_SUMMARY, and on a mismatch the diagnostics bundle."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import labs, lifecycle, plan, report
from .flags import LabFlags
from .ui import UI, make_console

__all__ = ["LabRun", "run_labs"]


@dataclasses.dataclass(frozen=True)
class LabRun:
    results: list
    exit_code: int               # report.exit_code: 0 every probe as expected, 1 one differed
    diagnostics: Path | None     # the bundle written when one differed, if it could be


def run_labs(lab_ids: Sequence[str], flags: LabFlags) -> LabRun:
    settings = flags.settings()
    selected = [labs.load_lab(lab_id) for lab_id in lab_ids]
    ui = UI(quiet=settings.quiet, verbose=settings.verbose)
    if settings.targets_own_cluster:
        env = lifecycle.up(settings, ui)
        selected, skipped = plan.plan(selected, None, flags.test)
        return _run(env, selected, skipped, flags, lab_ids, ui)
    from . import target

    env = target.connect(settings, ui)
    selected, skipped = plan.plan(selected, env.target, flags.test)
    with target.Visit(env, [lab.namespace for lab in selected]) as visit:
        outcome = _run(env, selected, skipped, flags, lab_ids, ui, visit=visit)
    return outcome


def _run(env, selected: list, skipped: list, flags: LabFlags, lab_ids: Sequence[str], ui: UI, *,
         visit=None) -> LabRun:
    # `--json -`: standard output carries the JSON alone; the table goes to standard error.
    out = make_console(sys.stderr if flags.json == "-" else sys.stdout)
    topologies: dict = {}   # lab id -> labs.topology_record, for the results JSON and the HTML page
    if flags.step:
        from .instructor import Score, step_lab

        pause, score = flags.pause and sys.stdin.isatty(), Score()   # one score across the labs
        results = []
        for lab in selected:
            results += step_lab(env, lab, out, pause=pause, score=score)
            if (seen := labs.topology_now(env, lab)) is not None:
                topologies[lab.id] = seen
    else:
        results = labs.run_labs_timed(env, selected, topologies)
    folder = None
    if visit is not None and any(not r.passed for r in results):
        folder = _diagnostics(env, flags, ui)   # before the clean-up takes the labs' namespaces away
    if visit is not None and (safety := visit.finish()) is not None:
        results.append(safety)
    ui.stop()
    report.render_table(results, out, title=f"svclab · provider {env.provider.describe()}")
    report.render_skipped(skipped, out)
    _write_files(results, flags, env, list(lab_ids), topologies, skipped)
    code = report.exit_code(results, skipped)
    if code and folder is None:
        folder = _diagnostics(env, flags, ui)
    return LabRun(results, code, folder)


def _diagnostics(env, flags: LabFlags, ui: UI) -> Path | None:
    from .diagnostics import collect_or_none

    folder = collect_or_none(env, Path(flags.diagnostics) if flags.diagnostics else Path.cwd())
    if folder:
        ui.warn(f"diagnostics written to {folder}")
    return folder


def _write_files(results: list, flags: LabFlags, env: lifecycle.Environment, lab_ids: list[str],
                 topologies: dict, skipped: Sequence = ()) -> None:
    context = {"cluster": env.settings.cluster_name, "provider": env.provider.name,
               "kube_proxy_mode": env.kube_proxy_mode,
               "labs": lab_ids, "topology": topologies, "skipped": [s.as_dict() for s in skipped]}
    if env.target:
        context["target"] = env.target.as_dict()
    text = report.to_json(results, context=context)
    if flags.json:
        if flags.json == "-":
            print(text)
        else:
            Path(flags.json).write_text(text + "\n")
    if flags.junit:
        Path(flags.junit).write_text(report.to_junit(results, skipped) + "\n")
    doc = json.loads(text)   # the HTML page and the Markdown diagram read what the JSON file holds
    if flags.html:
        from . import html_report

        Path(flags.html).write_text(html_report.render_page([doc], labs.load_claims()), encoding="utf-8")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if flags.markdown or summary_file:
        text = report.to_markdown(results, title=f"svclab {' '.join(lab_ids)} · {env.provider.name}",
                                  doc=doc, html=flags.html)
        if flags.markdown:
            Path(flags.markdown).write_text(text)
        if summary_file:
            with open(summary_file, "a") as f:
                f.write(text)
