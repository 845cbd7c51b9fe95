"""Step mode (`svclab lab.<id> --step`): one probe at a time, with a question before and an
explanation after.

The lab is applied and waited for exactly as in a normal run (labs.start_lab); then each probe,
in the order a normal run takes them (labs.run_order: traffic that must get through first, then
expected silence, then the probes that change the cluster), shows its path and its "Predict:"
question. Where the expectation is a choice between a few outcomes (client or node, answers or
no answer), the learner picks one before the probe is observed (only when asked to pause and
stdin is a terminal); otherwise step mode waits for Enter. Then it shows what was observed next to
what the lab expects, whether the prediction was right, and why. The run ends with the score.
The right answer is the lab's expectation itself, never written twice. The results are the same
Result objects a normal run returns, so the table, JSON and exit code do not change.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import labs
from .config import Settings
from .labs import Lab, Probe, Result
from .lifecycle import Environment
from .probes import Prediction

__all__ = ["step_lab", "rules_hint", "question", "answer", "before_after", "ask_prediction", "Score"]

DEFAULT_CLUSTER = Settings.cluster_name


def rules_hint(lab: Lab, probe: Probe, cluster: str, *, target: tuple[Path, str | None] | None = None) -> str | None:
    """The lab.rules command that shows the node rules behind PROBE's path, when it crosses them:
    on svclab's cluster CLUSTER, or on the user's TARGET (kubeconfig file, context)."""
    service = probe.rules_service()
    if not service:
        return None
    service = service if "/" in service else f"{lab.namespace}/{service}"
    if target is not None:
        kubeconfig, context = target
        where = f" --kubeconfig {shlex.quote(str(kubeconfig))}" + (f" --context {shlex.quote(context)}" if context else "")
    else:
        where = f" --name {cluster}" if cluster != DEFAULT_CLUSTER else ""
    return f"svclab lab.rules --service {service}{where}"


def question(out: Console, lab: Lab, probe: Probe, index: int, prediction: Prediction | None = None) -> None:
    out.print()
    out.rule(f"{escape(lab.id)} · probe {index}/{len(lab.probes)} · {escape(probe.id)} ({escape(probe.claim)})",
             align="left")
    out.print(f"[bold]Path:[/]     {escape(probe.path)}")
    out.print(f"[bold]Predict:[/]  {escape(probe.predict or 'What will this path show?')}")
    if prediction:
        out.print("          " + "   ".join(f"[bold]{i}[/] {escape(c)}" for i, c in enumerate(prediction.choices, 1)))


@dataclasses.dataclass
class Score:
    """The learner's predictions so far: right ones, and those that counted (a probe whose
    observation differs from the lab's expectation does not count either way)."""

    right: int = 0
    counted: int = 0

    def line(self) -> str:
        return f"predictions: {self.right} of {self.counted} right" if self.counted else ""


def ask_prediction(prediction: Prediction, read: Callable[[str], str]) -> str | None:
    """The learner's pick among PREDICTION's choices (by number or by its first letters); None for
    Enter alone. EOFError (stdin closed) passes through."""
    choices = prediction.choices
    for _ in range(3):
        said = read(f"[dim]your prediction (1-{len(choices)}, Enter: skip) ·  Ctrl-C: stop[/] ").strip().lower()
        if not said:
            return None
        if said.isdigit() and 1 <= int(said) <= len(choices):
            return choices[int(said) - 1]
        matches = [c for c in choices if c.lower().startswith(said)]
        if len(matches) == 1:
            return matches[0]
    return None


def verdict_on(prediction: Prediction, picked: str | None, result: Result, score: Score) -> str | None:
    """The line that tells the learner how the prediction went, and counts it in SCORE."""
    if picked is None:
        return None
    if not result.passed:
        return f"you predicted {escape(picked)}; the cluster did not do what the lab expects, so this one does not count"
    score.counted += 1
    if picked == prediction.right:
        score.right += 1
        return f"[green]right[/]: you predicted {escape(picked)}"
    return f"[red]not this time[/]: you predicted {escape(picked)}, the answer is {escape(prediction.right)}"


def answer(out: Console, lab: Lab, probe: Probe, result: Result, *, cluster: str,
           earlier: Sequence[Result] = (), target: tuple[Path, str | None] | None = None) -> None:
    verdict = "[green]as expected[/]" if result.passed else "[bold red]DIFFERS[/]"
    out.print(f"[bold]Observed:[/] {escape(result.observed)}")
    out.print(f"[bold]Expected:[/] {escape(result.expected)}")
    out.print(f"[bold]Verdict:[/]  {verdict} [dim]({result.seconds:.1f}s)[/]")
    for line in result.evidence[:6]:
        out.print(f"  [dim]·[/] {escape(line)}")
    for problem in result.problems if not result.passed else []:
        out.print(f"  [red]differs:[/] {escape(problem)}")
    if probe.kind == "policy-flip":
        out.print(before_after(result, next((r for r in earlier if "codes" in r.facts), None)))
    if probe.why:
        out.print(f"[bold]Why:[/]      {escape(probe.why)}")
    if hint := rules_hint(lab, probe, cluster, target=target):
        out.print(f"[dim]see the rules:[/] {escape(hint)}")


def _sources(flip: Result) -> dict[str, str]:
    """Per policy, the source the backend saw: its address and kind, from the probe's facts."""
    seen = {}
    for side in ("before", "after"):
        policy, kind, ip = (flip.facts.get(f"{side}_{key}") for key in ("policy", "source", "ip"))
        if policy:
            seen[policy] = f"{ip} ({kind})" if ip and kind else (f"a {kind} address" if kind else "no answer")
    return seen


def before_after(flip: Result, health: Result | None) -> Table:
    """The policy-flip probe's facts as a table: one column per policy, the source the backend
    saw, and (from the lab's health-check probe, when it ran) each node's health-check answer."""
    before, after = flip.facts.get("before_policy", "?"), flip.facts.get("after_policy", "?")
    table = Table(title="before / after", title_justify="left", caption_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column(f"{before} (before)")
    table.add_column(f"{after} (after)")
    sources = _sources(flip)
    table.add_row("source the backend saw", sources.get(before, "?"), sources.get(after, "?"))
    if health is not None:
        table.add_row("health check answer on", "", "")
        for node, code in sorted(health.facts.get("codes", {}).items()):
            local = f"HTTP {code}" if code else "no answer"
            cells = {policy: "none" if policy == "Cluster" else local for policy in (before, after)}
            table.add_row(f"  {node}", cells[before], cells[after])
        table.caption = ("Cluster: no healthCheckNodePort, every node takes traffic. Local: as observed by "
                         f"probe {health.probe} (a Local Service over the same pod).")
    return table


def _wait_for_enter(out: Console, read: Callable[[str], str]) -> bool:
    """Waits for Enter; False when stdin has closed (stop pausing from then on)."""
    try:
        read("[dim]Enter: observe it · Ctrl-C: stop[/] ")
    except EOFError:
        return False
    except KeyboardInterrupt:
        out.print()  # the error line that follows starts on a line of its own
        raise
    return True


def step_lab(env: Environment, lab: Lab, out: Console, *, pause: bool,
             read: Callable[[str], str] | None = None, score: Score | None = None) -> list[Result]:
    """Runs LAB's probes one at a time, telling the story on OUT; returns their results."""
    ctx = labs.start_lab(env, lab)
    env.ui.stop()
    read = read or out.input
    score = Score() if score is None else score
    results: list[Result] = []
    ordered = [p for batch in labs.run_order(lab, env.provider.name, env.kube_proxy_mode) for p in batch]
    for index, probe in enumerate(ordered, 1):
        prediction = probe.expectation(env.provider.name, env.kube_proxy_mode).prediction()
        question(out, lab, probe, index, prediction if pause else None)
        picked = None
        if pause and prediction:
            try:
                picked = ask_prediction(prediction, read)
            except EOFError:
                pause = False
        elif pause:
            pause = _wait_for_enter(out, read)
        with env.ui.working(f"observing {probe.id}"):
            result = labs.run_probe(ctx, probe)
        target = None if env.settings.targets_own_cluster else (env.settings.target_kubeconfig(), env.settings.context)
        answer(out, lab, probe, result, cluster=env.settings.cluster_name, earlier=results, target=target)
        if prediction and (line := verdict_on(prediction, picked, result, score)):
            out.print(f"[bold]You:[/]      {line}")
        results.append(result)
    if score.line():
        out.print()
        out.print(f"[bold]{score.line()}[/]")
    out.print()
    return [next(r for r in results if r.probe == p.id) for p in lab.probes]
