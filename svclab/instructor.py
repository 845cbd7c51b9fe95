"""Step mode (`svclab lab.<id> --step`): one probe at a time, with a question before and an
explanation after.

The lab is applied and waited for exactly as in a normal run (labs.start_lab); then each probe,
in the order the lab lists them, shows its path and its "Predict:" question, waits for Enter
(only when asked to and stdin is a terminal), is observed with labs.run_probe, and shows what was
observed next to what the lab expects, and why. The results are the same Result objects a normal
run returns, so the table, JSON and exit code do not change.

Lab files list the probes that expect traffic to get through before those that expect silence, so
running them in order keeps "no answer" an observation rather than a race with kube-proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import labs
from .config import Settings
from .labs import Lab, Probe, Result
from .lifecycle import Environment

__all__ = ["step_lab", "rules_hint", "question", "answer", "before_after"]

DEFAULT_CLUSTER = Settings.cluster_name


def rules_hint(lab: Lab, probe: Probe, cluster: str) -> str | None:
    """The lab.rules command that shows the node rules behind PROBE's path, when it crosses them."""
    spec = probe.spec
    crosses = spec.get("kind") in ("health-check", "policy-flip") or (
        spec.get("kind") == "http" and spec.get("via") in ("node-port", "load-balancer"))
    if not crosses or not spec.get("service"):
        return None
    service = spec["service"] if "/" in spec["service"] else f"{lab.namespace}/{spec['service']}"
    return f"svclab lab.rules --service {service}" + (f" --name {cluster}" if cluster != DEFAULT_CLUSTER else "")


def question(out: Console, lab: Lab, probe: Probe, index: int) -> None:
    out.print()
    out.rule(f"{escape(lab.id)} · probe {index}/{len(lab.probes)} · {escape(probe.id)} ({escape(probe.claim)})",
             align="left")
    out.print(f"[bold]Path:[/]     {escape(probe.path)}")
    out.print(f"[bold]Predict:[/]  {escape(probe.predict or 'What will this path show?')}")


def answer(out: Console, lab: Lab, probe: Probe, result: Result, *, cluster: str,
           earlier: Sequence[Result] = ()) -> None:
    verdict = "[green]as expected[/]" if result.passed else "[bold red]DIFFERS[/]"
    out.print(f"[bold]Observed:[/] {escape(result.observed)}")
    out.print(f"[bold]Expected:[/] {escape(result.expected)}")
    out.print(f"[bold]Verdict:[/]  {verdict} [dim]({result.seconds:.1f}s)[/]")
    for line in result.evidence[:6]:
        out.print(f"  [dim]·[/] {escape(line)}")
    for problem in result.problems if not result.passed else []:
        out.print(f"  [red]differs:[/] {escape(problem)}")
    if probe.spec.get("kind") == "policy-flip":
        out.print(before_after(result, next((r for r in earlier if "codes" in r.facts), None)))
    if probe.why:
        out.print(f"[bold]Why:[/]      {escape(probe.why)}")
    if hint := rules_hint(lab, probe, cluster):
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
             read: Callable[[str], str] | None = None) -> list[Result]:
    """Runs LAB's probes one at a time, telling the story on OUT; returns their results."""
    ctx = labs.start_lab(env, lab)
    env.ui.stop()
    read = read or out.input
    results: list[Result] = []
    for index, probe in enumerate(lab.probes, 1):
        question(out, lab, probe, index)
        if pause:
            pause = _wait_for_enter(out, read)
        with env.ui.working(f"observing {probe.id}"):
            result = labs.run_probe(ctx, probe)
        answer(out, lab, probe, result, cluster=env.settings.cluster_name, earlier=results)
        results.append(result)
    out.print()
    return results
