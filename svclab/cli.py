"""The invoke task namespace (``invoke lab.nodeport`` in a checkout, ``svclab lab.nodeport`` when
installed): thin wrappers that resolve settings, call the engine and map errors to exit codes."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json as jsonlib
import os
import signal
import sys
from pathlib import Path

import requests
import urllib3
from docker.errors import DockerException
from invoke import Collection, Exit
from kubernetes.client.rest import ApiException

from . import __version__, labs, lifecycle, report, resources
from .config import load_settings
from .errors import EXIT_CLOSED_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_PREREQUISITE, SvclabError, UsageError
from .program import SvclabProgram, SvclabTask as Task
from .ui import UI, make_console

__all__ = ["namespace", "program", "main"]

COMMON_HELP = {
    "name": "cluster name (default: svclab)",
    "provider": "load-balancer implementation: metallb, kube-vip, none",
    "workers": "number of worker nodes (default: the existing cluster's, else 2)",
    "node_image": "kind node image (default: kind's own)",
    "verbose": "show every command svclab runs",
    "quiet": "print only results and errors",
}
LAB_HELP = {**COMMON_HELP, "json": "also write results as JSON to this file ('-': standard output)",
            "junit": "also write results as JUnit XML to this file",
            "markdown": "also write a Markdown summary to this file (appended to $GITHUB_STEP_SUMMARY when set)",
            "diagnostics": "folder for the diagnostics bundle written when a probe differs (default: here)",
            "step": "one probe at a time: predict, observe, explain (waits for Enter on a terminal)",
            "pause": "with --step, wait for Enter before each probe when stdin is a terminal (--no-pause: never)"}


def _settings(name=None, provider=None, workers=None, node_image=None, verbose=None, quiet=None, ingress=None):
    return load_settings({"cluster_name": name, "provider": provider, "workers": workers, "ingress": ingress,
                          "node_image": node_image, "verbose": verbose or None, "quiet": quiet or None})


def _first_line(e: Exception) -> str:
    reason = getattr(e, "explanation", None) or getattr(e, "reason", None) or str(e)
    return str(reason).strip().splitlines()[0][:300] if str(reason).strip() else type(e).__name__


def guarded(fn):
    """Turns svclab errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        try:
            return fn(c, *args, **kwargs)
        except SvclabError as e:
            UI().error(str(e))
            raise Exit(code=e.exit_code) from None
        except (DockerException, ApiException) as e:
            UI().error(f"{type(e).__name__}: {_first_line(e)}")
            raise Exit(code=EXIT_FAILURE) from None
        except (urllib3.exceptions.HTTPError, requests.RequestException) as e:
            UI().error(f"lost the connection to the cluster or its client ({type(e).__name__}): "
                       "check `svclab cluster.status`, or run `svclab cluster.down` and `up` again")
            raise Exit(code=EXIT_FAILURE) from None
        except KeyboardInterrupt:
            UI().error("interrupted")
            raise Exit(code=EXIT_INTERRUPTED) from None

    return wrapper


# ---------------------------------------------------------------- cluster.*

@guarded
def up(c, name=None, provider=None, workers=None, node_image=None, ingress=None, verbose=False, quiet=False):
    """Create (or reuse) a kind cluster with a load balancer, an Ingress controller and the probe clients."""
    settings = _settings(name, provider, workers, node_image, verbose, quiet, ingress)
    lifecycle.up(settings, UI(quiet=settings.quiet, verbose=settings.verbose))


@guarded
def down(c, name=None, verbose=False, quiet=False):
    """Delete a cluster svclab created (nothing to delete is not an error)."""
    settings = _settings(name, verbose=verbose, quiet=quiet)
    ui = UI(quiet=settings.quiet, verbose=settings.verbose)
    if not lifecycle.down(settings, ui):
        ui.step(f"no svclab cluster named {settings.cluster_name}: nothing to do")


@guarded
def status(c, name=None, json=False):
    """Show what svclab knows about a cluster (it need not exist)."""
    info = lifecycle.status(_settings(name))
    if json:
        print(jsonlib.dumps(info, indent=2))
        return
    for key, value in info.items():
        print(f"{key:18} {value}")


cluster = Collection("cluster")
UP_HELP = {**COMMON_HELP, "ingress": "Ingress controller to install: traefik (default) or none"}
for fn, help_ in ((up, UP_HELP), (down, COMMON_HELP), (status, {"name": COMMON_HELP["name"], "json": "print JSON"})):
    cluster.add_task(Task(fn, help={k: v for k, v in help_.items() if k in inspect.signature(fn).parameters}))


# ---------------------------------------------------------------- lab.*

def run_labs(lab_ids, *, name=None, provider=None, workers=None, node_image=None, json=None, junit=None,
             markdown=None, diagnostics=None, verbose=False, quiet=False, step=False, pause=True) -> None:
    settings = _settings(name, provider, workers, node_image, verbose, quiet)
    selected = [labs.load_lab(lab_id) for lab_id in lab_ids]
    ui = UI(quiet=settings.quiet, verbose=settings.verbose)
    env = lifecycle.up(settings, ui)
    # `--json -`: standard output carries the JSON alone; the table goes to standard error.
    out = make_console(sys.stderr if json == "-" else sys.stdout)
    if step:
        from .instructor import step_lab

        results = [r for lab in selected for r in step_lab(env, lab, out, pause=pause and sys.stdin.isatty())]
    else:
        results = [r for lab in selected for r in labs.run_lab(env, lab)]
    ui.stop()
    report.render_table(results, out, title=f"svclab · provider {env.provider.describe()}")
    if json:
        text = report.to_json(results, context={"cluster": settings.cluster_name, "provider": env.provider.name,
                                                "labs": lab_ids})
        if json == "-":
            print(text)
        else:
            Path(json).write_text(text + "\n")
    if junit:
        Path(junit).write_text(report.to_junit(results) + "\n")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if markdown or summary_file:
        text = report.to_markdown(results, title=f"svclab {' '.join(lab_ids)} · {env.provider.name}")
        if markdown:
            Path(markdown).write_text(text)
        if summary_file:
            with open(summary_file, "a") as f:
                f.write(text)
    code = report.exit_code(results)
    if code:
        from .diagnostics import collect_or_none

        folder = collect_or_none(env, Path(diagnostics) if diagnostics else Path.cwd())
        if folder:
            ui.warn(f"diagnostics written to {folder}")
        raise Exit(code=code)


def lab_task(lab_id: str) -> Task:
    @guarded
    def task(c, name=None, provider=None, workers=None, node_image=None, json=None, junit=None, markdown=None,
             diagnostics=None, verbose=False, quiet=False, step=False, pause=True):
        run_labs([lab_id], name=name, provider=provider, workers=workers, node_image=node_image, json=json,
                 junit=junit, markdown=markdown, diagnostics=diagnostics, verbose=verbose, quiet=quiet,
                 step=step, pause=pause)

    task.__doc__ = f"{labs.load_lab(lab_id).title} (brings the cluster up if needed)."
    return Task(task, name=lab_id, help=LAB_HELP)


def broken_lab_task(lab_id: str, error: UsageError) -> Task:
    """Stands in for a lab whose definition does not load: every other task keeps working, and
    this one says what is wrong with the definition."""

    @guarded
    def task(c, name=None, provider=None, workers=None, node_image=None, json=None, junit=None, markdown=None,
             diagnostics=None, verbose=False, quiet=False, step=False, pause=True):
        raise error

    task.__doc__ = f"(broken definition: {error.message})"
    return Task(task, name=lab_id, help=LAB_HELP)


@guarded
def all_labs(c, name=None, provider=None, workers=None, node_image=None, json=None, junit=None, markdown=None,
             diagnostics=None, verbose=False, quiet=False, step=False, pause=True):
    """Run every lab on one cluster."""
    run_labs(labs.available_labs(), name=name, provider=provider, workers=workers, node_image=node_image,
             json=json, junit=junit, markdown=markdown, diagnostics=diagnostics, verbose=verbose, quiet=quiet,
             step=step, pause=pause)


@guarded
def list_labs(c, json=False):
    """List the labs and the claims each demonstrates."""
    found = [labs.load_lab(lab_id) for lab_id in labs.available_labs()]
    if json:
        print(jsonlib.dumps([{"id": lab.id, "task": f"lab.{lab.id}", "title": lab.title, "claims": list(lab.claims)}
                             for lab in found], indent=2))
        return
    for lab in found:
        print(f"{lab.id:14} {' '.join(lab.claims):28} {lab.title}")


@guarded
def lab_rules(c, service=None, name=None, node=None):
    """Show kube-proxy's rules for one Service on each node: svclab lab.rules --service NS/NAME"""
    from .rules import collect, render

    settings = _settings(name)
    summary, found = collect(settings, service, node)
    if found and found[0].mode == "ipvs":
        UI().warn("kube-proxy runs in ipvs mode: the Service's forwarding lives in IPVS, not in these tables")
    print(summary)
    print()
    print(render(found), end="")


lab = Collection("lab")
for lab_id in labs.lab_ids():
    try:
        lab.add_task(lab_task(lab_id))
    except UsageError as e:
        lab.add_task(broken_lab_task(lab_id, e))
lab.add_task(Task(all_labs, name="all", help=LAB_HELP))
lab.add_task(Task(list_labs, name="list", help={"json": "print JSON"}))
lab.add_task(Task(lab_rules, name="rules", help={"service": "the Service, as NAMESPACE/NAME",
                                                 "name": COMMON_HELP["name"],
                                                 "node": "only this node (default: every node)"}))


# ---------------------------------------------------------------- doctor

@guarded
def doctor(c, json=False):
    """Check this machine for everything that would make a lab fail, and say how to fix it."""
    from rich.table import Table

    from .doctor import FAIL, run_doctor

    findings = run_doctor(_settings())
    if json:
        print(jsonlib.dumps([dataclasses.asdict(f) for f in findings], indent=2))
    else:
        table = Table(show_lines=False)
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column)
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for f in findings:
            table.add_row(f.check, f"[{style[f.status]}]{f.status}[/]", f.detail, f.fix)
        make_console(sys.stdout).print(table)
    if any(f.status == FAIL for f in findings):
        raise Exit(code=EXIT_PREREQUISITE)


# ---------------------------------------------------------------- bench

@guarded
def bench(c, name=None, provider=None, workers=None, node_image=None, json=None, repeat=3, verbose=False,
          quiet=False):
    """Measure cold up vs bare kind, warm labs, probe latency, failover, peak memory and scaling."""
    from rich.table import Table

    from .bench import run_bench

    settings = _settings(name, provider, workers, node_image, verbose, quiet)
    try:
        repeat = int(repeat)
    except ValueError:
        raise UsageError(f"--repeat must be a whole number, got {repeat!r}") from None
    if not 1 <= repeat <= 10:
        raise UsageError(f"--repeat must be between 1 and 10, got {repeat}")
    figures = run_bench(settings, UI(quiet=settings.quiet, verbose=settings.verbose), repeat=repeat)
    out = make_console(sys.stdout)
    table = Table(title="svclab bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if not isinstance(value, (list, dict)):
            table.add_row(key, str(value))
    for key, values in figures["samples"].items():
        table.add_row(f"{key} samples", ", ".join(map(str, values)))
    out.print(table)
    for key in ("by_services", "by_nodes"):
        rows = figures[key]
        scaling = Table(title=f"time {key.replace('_', ' ')}")
        for column in rows[0]:
            scaling.add_column(column.replace("_", " "), justify="right")
        for row in rows:
            scaling.add_row(*(str(v) for v in row.values()))
        out.print(scaling)
    if json:
        Path(json).write_text(jsonlib.dumps(figures, indent=2) + "\n")


# ---------------------------------------------------------------- images.*

@guarded
def images_save(c, output="svclab-bundle.tar", node_image=None):
    """Write one archive with every image and pinned file the labs need (offline classrooms)."""
    from .bundle import save_bundle

    settings = _settings(node_image=node_image)
    manifest = save_bundle(settings, Path(output))
    print(f"wrote {output}: {len(manifest['images'])} images, {len(manifest['files'])} pinned files")


@guarded
def images_load(c, archive="svclab-bundle.tar"):
    """Load a bundle: images into Docker, pinned files into the mirror folder."""
    from .bundle import load_bundle

    settings = _settings()
    mirror_dir = settings.mirror or settings.cache_dir / "mirror"
    manifest = load_bundle(settings, Path(archive), mirror_dir)
    print(f"loaded {len(manifest['images'])} images; pinned files in {mirror_dir}")
    print(f"now: export SVCLAB_MIRROR={mirror_dir}")


images_ns = Collection("images")
images_ns.add_task(Task(images_save, name="save", help={"output": "archive to write",
                                                         "node_image": COMMON_HELP["node_image"]}))
images_ns.add_task(Task(images_load, name="load", help={"archive": "archive written by images.save"}))


# ---------------------------------------------------------------- report.*

@guarded
def compare(c, results=""):
    """Compare providers from `lab.all --json` files: svclab report.compare -r a.json,b.json"""
    report.render_comparison(_load_results(results), make_console(sys.stdout))


def _load_results(results: str) -> list[dict]:
    paths = [Path(p) for p in results.split(",") if p]
    if not paths:
        raise UsageError("no result files given", hint="pass --results metallb.json,none.json (from `lab.all --json`)")
    docs = []
    for path in paths:
        try:
            doc = jsonlib.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: not a readable results file ({type(e).__name__})") from None
        if not (isinstance(doc, dict) and isinstance(doc.get("results"), list)
                and all(isinstance(r, dict) for r in doc["results"])):
            raise UsageError(f"{path}: not an svclab results file (expected an object with a list of results)",
                             hint="write one with `svclab lab.all --json FILE`")
        docs.append(doc)
    return docs


@guarded
def claims(c, results=""):
    """Print the claims table (Markdown), each claim marked from `lab.all --json` result files."""
    import yaml

    table = yaml.safe_load(resources.claims_file().read_text())
    print(report.claims_markdown(table, _load_results(results)), end="")


report_ns = Collection("report")
report_ns.add_task(Task(compare, help={"results": "comma-separated JSON result files, one per provider"}))
report_ns.add_task(Task(claims, help={"results": "comma-separated JSON result files, one per provider"}))


namespace = Collection()
namespace.add_task(Task(doctor, help={"json": "print the findings as JSON"}))
namespace.add_task(Task(bench, help={**COMMON_HELP, "json": "also write the figures as JSON to this file",
                                     "repeat": "bare/svclab cluster pairs to time; medians are reported (default 3)"}))
namespace.add_collection(cluster)
namespace.add_collection(lab)
namespace.add_collection(images_ns)
namespace.add_collection(report_ns)

program = SvclabProgram(namespace=namespace, name="svclab", binary="svclab", version=__version__)


def _terminated(signum, frame):
    # `kill`, `timeout` or a cancelled CI job: undo a half-made cluster exactly as for Ctrl-C.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    try:
        program.run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`svclab lab.list | head -1`): end quietly, as other commands do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_CLOSED_PIPE)
