"""`svclab soak`: lab.all (or the labs given) again and again on one cluster, and every verdict
that differed from its expectation even once, with the run it differed in and the evidence.

The runs are gathered by `soak` (one `up`, the cluster's lock for the whole soak, a progress line
per run); `summarise` is a pure function from what the runs returned to the report, and `lines`
and `as_json` render it.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import labs, lifecycle
from .config import Settings
from .errors import EXIT_MISMATCH, EXIT_OK, UsageError
from .exits import exit_for
from .lock import cluster_held
from .ui import UI, stop_spinners

__all__ = ["DEFAULT_RUNS", "MAX_RUNS", "JSON_VERSION", "THE_RUN", "Raised", "Miss", "Tally", "SoakReport",
           "parse_runs", "summarise", "lines", "as_json", "exit_code", "selected_labs", "soak", "soak_runs", "run_once", "differed"]

DEFAULT_RUNS = 3
MAX_RUNS = 1000
JSON_VERSION = 1
THE_RUN = "(the run)"   # the key a run that raised is reported under


@dataclasses.dataclass(frozen=True)
class Raised:
    """A run that ended with an error instead of results."""

    message: str


@dataclasses.dataclass(frozen=True)
class Miss:
    """One verdict that differed from its expectation: in which run (1-based), and what was seen."""

    run: int
    key: str                   # lab/probe, or THE_RUN for a run that raised
    observed: str
    problems: list[str]
    evidence: list[str]
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Tally:
    key: str
    ran: int                   # runs that observed the probe
    passed: int                # runs in which it was as expected


@dataclasses.dataclass(frozen=True)
class SoakReport:
    runs: int                  # runs made (a run that raised counts)
    asked: int                 # runs asked for
    labs: list[str]
    probes: list[Tally]        # every probe seen, in the order the labs report them
    unexpected: list[Miss]     # in run order
    seconds: list[float]       # the labs' wall time, per run
    stopped: str | None = None  # why the soak ended before ASKED runs
    slowest: list[tuple[str, float] | None] = dataclasses.field(default_factory=list)  # per run: its slowest probe
    cluster: str = ""
    provider: str = ""
    diagnostics: str | None = None   # the bundle written at the first run with an unexpected verdict

    @property
    def failed_runs(self) -> list[Miss]:
        return [m for m in self.unexpected if m.key == THE_RUN]

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"


def parse_runs(value: Any) -> int:
    """--runs as a whole number between 1 and MAX_RUNS (none given: DEFAULT_RUNS; UsageError otherwise)."""
    if value is None:
        return DEFAULT_RUNS
    try:
        runs = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"--runs must be a whole number, got {value!r}") from None
    if not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"--runs must be between 1 and {MAX_RUNS}, got {runs}")
    return runs


# ------------------------------------------------------------------ the pure part

def _key(result: labs.Result) -> str:
    return f"{result.lab}/{result.probe}"


def _raised_miss(run: int, raised: Raised) -> Miss:
    return Miss(run, THE_RUN, f"the run stopped: {raised.message}", [raised.message], [])


def _result_miss(run: int, result: labs.Result) -> Miss:
    return Miss(run, _key(result), result.observed, list(result.problems), list(result.evidence), dict(result.facts))


def summarise(runs: Sequence[Sequence[labs.Result] | Raised], seconds: Sequence[float] = (), *,
              asked: int | None = None, stopped: str | None = None) -> SoakReport:
    """The soak of RUNS (each the results of one run, or Raised), with the labs' wall time per run
    (SECONDS), ASKED runs asked for (default: as many as were made) and why the soak STOPPED early."""
    tallies: dict[str, list[int]] = {}   # key -> [ran, passed]
    lab_ids: dict[str, None] = {}
    unexpected = []
    slowest: list[tuple[str, float] | None] = []
    for number, run in enumerate(runs, start=1):
        if isinstance(run, Raised):
            unexpected.append(_raised_miss(number, run))
            slowest.append(None)
            continue
        longest = max(run, key=lambda r: r.seconds, default=None)
        slowest.append((_key(longest), longest.seconds) if longest is not None else None)
        for result in run:
            lab_ids.setdefault(result.lab)
            tally = tallies.setdefault(_key(result), [0, 0])
            tally[0] += 1
            tally[1] += bool(result.passed)
            if not result.passed:
                unexpected.append(_result_miss(number, result))
    return SoakReport(runs=len(runs), asked=len(runs) if asked is None else asked, labs=list(lab_ids),
                      probes=[Tally(key, ran, passed) for key, (ran, passed) in tallies.items()],
                      unexpected=unexpected, seconds=[round(s, 1) for s in seconds], stopped=stopped,
                      slowest=slowest)


def exit_code(report: SoakReport) -> int:
    """0 when a run was made and no verdict differed in any, 1 otherwise."""
    return EXIT_OK if report.runs and not report.unexpected else EXIT_MISMATCH


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def header(report: SoakReport) -> str:
    return (f"{_plural(report.runs, 'run')} of {_plural(len(report.labs), 'lab')}, "
            f"{_plural(len(report.probes), 'probe')} each: {_plural(len(report.unexpected), 'unexpected verdict')}")


def wall_times(report: SoakReport) -> str | None:
    if not report.seconds:
        return None
    each = ", ".join(f"{s:.0f}s" for s in report.seconds)
    longest = max(range(len(report.seconds)), key=report.seconds.__getitem__)
    probe = report.slowest[longest] if longest < len(report.slowest) else None
    return (f"wall time per run: {each} (median {statistics.median(report.seconds):.0f}s, "
            f"longest {report.seconds[longest]:.0f}s" + (f": run {longest + 1}, whose slowest probe, {probe[0]}, "
                                                         f"took {probe[1]:.1f}s" if probe else "") + ")")


def miss_lines(miss: Miss) -> list[str]:
    problems = "; ".join(miss.problems) or "none"
    return [f"run {miss.run} · {miss.key}: observed {miss.observed}; problems {problems}",
            *(f"    {line}" for line in miss.evidence)]


def lines(report: SoakReport) -> list[str]:
    """The report for the terminal: the header, the wall times, why it stopped early, then each
    probe that differed at least once (as expected in how many runs) and every run it differed in."""
    out = [header(report)]
    if (times := wall_times(report)) is not None:
        out.append(times)
    if report.stopped:
        out.append(f"stopped after run {report.runs} of {report.asked}: {report.stopped}")
    tallies = {t.key: t for t in report.probes}
    for key in dict.fromkeys(m.key for m in report.unexpected):
        if key in tallies:
            t = tallies[key]
            out.append(f"{key}: as expected in {t.passed} of {_plural(t.ran, 'run')}")
        else:
            out.append(f"{_plural(len(report.failed_runs), 'run')} stopped with an error")
        out += [line for m in report.unexpected if m.key == key for line in miss_lines(m)]
    return out


def as_json(report: SoakReport) -> str:
    return json.dumps({
        "version": JSON_VERSION,
        "cluster": report.cluster,
        "provider": report.provider,
        "runs": report.runs,
        "asked": report.asked,
        "stopped": report.stopped,
        "labs": report.labs,
        "seconds": report.seconds,
        "slowest_probe": [None if slow is None else {"probe": slow[0], "seconds": slow[1]} for slow in report.slowest],
        "summary": {"probes": len(report.probes), "unexpected": len(report.unexpected),
                    "failed_runs": len(report.failed_runs),
                    "probes_that_differed": len({m.key for m in report.unexpected} - {THE_RUN})},
        "probes": {t.key: {"ran": t.ran, "passed": t.passed} for t in report.probes},
        "unexpected": [dataclasses.asdict(m) for m in report.unexpected],
        "diagnostics": report.diagnostics,
    }, indent=2, default=str)


# ------------------------------------------------------------------ the engine

def api_answers(env: lifecycle.Environment) -> bool:
    """Whether the cluster's API server still says it is ready."""
    try:
        return env.kube.get_json("/readyz", timeout=5).strip() == "ok"
    except Exception:  # noqa: BLE001 - whatever stops it answering, it does not answer
        return False


def progress_line(number: int, asked: int, seconds: float, unexpected: int) -> str:
    return f"run {number}/{asked}: {seconds:.0f}s, {_plural(unexpected, 'unexpected verdict')} so far"


def run_once(env: lifecycle.Environment, selected: Sequence[labs.Lab]) -> list[labs.Result] | Raised:
    """The results of one run of the SELECTED labs, or Raised with the line the error would end a
    command with (a bug, which no rule of exits.py knows, is raised)."""
    try:
        return labs.run_labs_timed(env, selected)
    except Exception as e:
        if (known := exit_for(e)) is None:
            raise
        return Raised(known[1])


def differed(run: Sequence[labs.Result] | Raised) -> int:
    """How many unexpected verdicts RUN adds (a run that raised: one)."""
    return 1 if isinstance(run, Raised) else sum(not r.passed for r in run)


def soak_runs(env: lifecycle.Environment, selected: Sequence[labs.Lab], runs: int, ui: UI, *,
              collect: Callable[[lifecycle.Environment], Path | None] | None = None) -> SoakReport:
    """RUNS runs of the SELECTED labs on ENV's cluster, reported. A run that raises is recorded
    with its error line and the next one starts, unless the API server no longer answers; Ctrl-C
    (or SIGTERM) ends the soak with what the runs so far saw. The first run with an unexpected
    verdict leaves a diagnostics bundle (COLLECT: diagnostics.collect_or_none into the current
    folder), taken while the cluster still shows what went wrong."""
    made: list[list[labs.Result] | Raised] = []
    seconds: list[float] = []
    stopped = None
    bundle: Path | None = None
    if collect is None:
        from .diagnostics import collect_or_none

        collect = lambda env: collect_or_none(env, Path.cwd())  # noqa: E731
    for number in range(1, runs + 1):
        started = time.monotonic()
        try:
            run = run_once(env, selected)
        except KeyboardInterrupt:
            stopped = "interrupted"
            break
        made.append(run)
        seconds.append(time.monotonic() - started)
        line = progress_line(number, runs, seconds[-1], sum(map(differed, made)))
        if differed(run):
            ui.warn(line)
            if bundle is None and (bundle := collect(env)) is not None:
                ui.warn(f"diagnostics of run {number} written to {bundle}")
        else:
            ui.done(line)
        if isinstance(run, Raised) and not api_answers(env):
            stopped = "the cluster's API server does not answer"
            break
    stop_spinners()
    report = summarise(made, seconds, asked=runs, stopped=stopped if len(made) < runs else None)
    return dataclasses.replace(report, diagnostics=str(bundle) if bundle else None)


def selected_labs(text: str | None) -> list[str]:
    """The labs of --labs (none given: every lab), in lab.all's order."""
    from .compare import parse_labs

    return list(parse_labs(text, labs.available_labs()))


def soak(settings: Settings, lab_ids: Sequence[str], runs: int, ui: UI) -> SoakReport:
    """Brings SETTINGS' cluster up (or reuses it) once, then runs the labs LAB_IDS RUNS times on it,
    holding the cluster's lock throughout."""
    runs = parse_runs(runs)
    if not settings.targets_own_cluster:
        raise UsageError("soak runs on a kind cluster of svclab's own",
                         hint="unset SVCLAB_KUBECONFIG/SVCLAB_CONTEXT, or run `svclab lab.all` on that cluster")
    selected = [labs.load_lab(lab_id) for lab_id in lab_ids]
    with cluster_held(settings, "soak", ui, namespaces=[lab.namespace for lab in selected]):
        env = lifecycle.up(settings, ui)
        report = soak_runs(env, selected, runs, ui)
    return dataclasses.replace(report, cluster=env.settings.cluster_name, provider=env.provider.name)
