"""The invoke task namespace (``invoke lab.nodeport`` in a checkout, ``svclab lab.nodeport`` when
installed): thin wrappers that turn flags into settings and call the engine; `guarded`
(svclab/exits.py) turns what they raise into one line and an exit code."""

from __future__ import annotations

import dataclasses
import inspect
import json as jsonlib
import os
import signal
import sys
from pathlib import Path

from invoke import Collection, Exit

from . import __version__, labs, lifecycle, report, session
from .errors import EXIT_CLOSED_PIPE, EXIT_PREREQUISITE, EXIT_USAGE, UsageError
from .exits import guarded
from .flags import COMMON_HELP, TARGET_HELP, LabFlags, flag_settings, lab_task
from .lock import cluster_held
from .program import SvclabProgram, SvclabTask as Task
from .ui import UI, make_console

__all__ = ["namespace", "program", "main"]

# ---------------------------------------------------------------- cluster.*

@guarded
def up(c, name=None, provider=None, workers=None, node_image=None, ingress=None, verbose=False, quiet=False):
    """Create (or reuse) a kind cluster with a load balancer, an Ingress controller and the probe clients."""
    settings = flag_settings(name, provider, workers, node_image, verbose, quiet, ingress)
    if not settings.targets_own_cluster:
        raise UsageError("cluster.up makes a kind cluster of svclab's own; the cluster of --kubeconfig/--context "
                         "is already up", hint="run the labs on it directly (`svclab lab.all --context ...`), "
                                               "or unset SVCLAB_KUBECONFIG/SVCLAB_CONTEXT")
    ui = UI(quiet=settings.quiet, verbose=settings.verbose)
    with cluster_held(settings, "cluster.up", ui):
        lifecycle.up(settings, ui)


@guarded
def down(c, name=None, kubeconfig=None, context=None, verbose=False, quiet=False):
    """Delete a cluster svclab created (nothing to delete is not an error); on a cluster it did not
    make (--kubeconfig/--context), remove only svclab's namespaces and its outside client."""
    settings = flag_settings(name, verbose=verbose, quiet=quiet, kubeconfig=kubeconfig, context=context)
    ui = UI(quiet=settings.quiet, verbose=settings.verbose)
    if not settings.targets_own_cluster:
        from .target import leave

        with cluster_held(settings, "cluster.down", ui, repair=False):
            leave(settings, ui)
        return
    with cluster_held(settings, "cluster.down", ui, repair=False):
        if not lifecycle.down(settings, ui):
            ui.step(f"no svclab cluster named {settings.cluster_name}: nothing to do")


@guarded
def status(c, name=None, json=False):
    """Show what svclab knows about a cluster (it need not exist)."""
    info = lifecycle.status(flag_settings(name))
    if json:
        print(jsonlib.dumps(info, indent=2))
        return
    for key, value in info.items():
        print(f"{key:18} {value}")


cluster = Collection("cluster")
UP_HELP = {**COMMON_HELP, "ingress": "Ingress controller to install: traefik (default) or none"}
for fn, help_ in ((up, UP_HELP), (down, {**COMMON_HELP, **TARGET_HELP}), (status, {"name": COMMON_HELP["name"], "json": "print JSON"})):
    cluster.add_task(Task(fn, help={k: v for k, v in help_.items() if k in inspect.signature(fn).parameters}))


# ---------------------------------------------------------------- lab.*

def run_labs(lab_ids: list[str], flags: LabFlags) -> None:
    settings = flags.settings()
    task = f"lab.{lab_ids[0]}" if len(lab_ids) == 1 else f"{len(lab_ids)} labs"
    with cluster_held(settings, task, UI(quiet=settings.quiet, verbose=settings.verbose),
                      namespaces=[labs.namespace_of(lab_id) for lab_id in lab_ids]):
        outcome = session.run_labs(lab_ids, flags)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


def broken_lab(error: UsageError):
    """Stands in for a lab whose definition does not load: every other task keeps working, and
    this one says what is wrong with the definition."""

    def run(flags: LabFlags) -> None:
        raise error

    return run


def lab_tasks() -> list[Task]:
    """A task per lab, then lab.all: what `svclab --list lab` shows of the labs."""
    tasks = []
    try:
        lab_ids = labs.lab_ids()
    except UsageError as e:
        # SVCLAB_LABS (or --labs) names what is not a folder: the lab tasks say so, the others work.
        broken = lab_task(broken_lab(e), name="all", doc=f"(no labs: {e.message})")
        return [lab_task(broken_lab(e), name=lab_id, doc=f"(no labs: {e.message})")
                for lab_id in labs.lab_ids(env={})] + [broken]
    for lab_id in lab_ids:
        try:
            title = labs.load_lab(lab_id).title
        except UsageError as e:
            tasks.append(lab_task(broken_lab(e), name=lab_id, doc=f"(broken definition: {e.message})"))
            continue
        tasks.append(lab_task(lambda flags, lab_id=lab_id: run_labs([lab_id], flags), name=lab_id,
                              doc=f"{title} (brings the cluster up if needed)."))
    tasks.append(lab_task(lambda flags: run_labs(labs.available_labs(), flags), name="all",
                          doc="Run every lab on one cluster."))
    return tasks


@guarded
def list_labs(c, json=False):
    """List the labs and the claims each demonstrates."""
    found, broken = [], {}
    for lab_id in labs.available_labs():
        try:
            found.append(labs.load_lab(lab_id))
        except UsageError as e:
            broken[lab_id] = e.message
    if json:
        print(jsonlib.dumps([{"id": lab.id, "task": f"lab.{lab.id}", "title": lab.title, "claims": list(lab.claims)}
                             for lab in found]
                            + [{"id": lab_id, "task": f"lab.{lab_id}", "error": message}
                               for lab_id, message in broken.items()], indent=2))
        return
    for lab in found:
        print(f"{lab.id:14} {' '.join(lab.claims):28} {lab.title}")
    for lab_id, message in broken.items():
        print(f"{lab_id:14} {'(broken)':28} {message}")


@guarded
def lab_rules(c, service=None, name=None, node=None, kubeconfig=None, context=None):
    """Show kube-proxy's rules for one Service on each node: svclab lab.rules --service NS/NAME"""
    from .rules import collect, render

    settings = flag_settings(name, kubeconfig=kubeconfig, context=context)
    summary, found = collect(settings, service, node)
    print(summary)
    print()
    print(render(found), end="")


@guarded
def check_labs(c, path=None):
    """Check lab definitions without a cluster: svclab lab.check DIR... (lab folders or folders of them)"""
    paths = path or []
    if not paths:
        raise UsageError("no lab folder given", hint="svclab lab.check labs/nodeport (or a folder of lab folders)")
    checked = [found for p in paths for found in labs.check_path(Path(p))]
    for where, problem in checked:
        print(f"ok  {where}" if problem is None else problem)
    if any(problem for _, problem in checked):
        raise Exit(code=EXIT_USAGE)


@guarded
def lab_schema(c):
    """Print the JSON Schema of lab.yaml (save it beside your lab folders as lab.schema.json)."""
    from .schema import json_schema_text

    print(json_schema_text(), end="")


def lab_collection() -> Collection:
    lab = Collection("lab")
    for task in lab_tasks():
        lab.add_task(task)
    lab.add_task(Task(list_labs, name="list", help={"json": "print JSON"}))
    lab.add_task(Task(check_labs, name="check", iterable=["path"],
                      help={"path": "a lab folder, or a folder of lab folders (the words after lab.check)"}))
    lab.add_task(Task(lab_schema, name="schema"))
    lab.add_task(Task(lab_rules, name="rules", help={"service": "the Service, as NAMESPACE/NAME",
                                                     "name": COMMON_HELP["name"],
                                                     "node": "only this node (default: every node)", **TARGET_HELP}))
    return lab


# ---------------------------------------------------------------- doctor

@guarded
def doctor(c, json=False):
    """Check this machine for everything that would make a lab fail, and say how to fix it."""
    from .doctor import FAIL, render_findings, run_doctor

    findings = run_doctor(flag_settings())
    if json:
        print(jsonlib.dumps([dataclasses.asdict(f) for f in findings], indent=2))
    else:
        render_findings(findings, make_console(sys.stdout))
    if any(f.status == FAIL for f in findings):
        raise Exit(code=EXIT_PREREQUISITE)


# ---------------------------------------------------------------- bench

@guarded
def bench(c, name=None, provider=None, workers=None, node_image=None, json=None, repeat=5, verbose=False,
          quiet=False):
    """Measure cold up vs bare kind, warm labs, probe latency, failover, peak memory and scaling."""
    from .bench import render_figures, run_bench

    settings = flag_settings(name, provider, workers, node_image, verbose, quiet)
    try:
        repeat = int(repeat)
    except ValueError:
        raise UsageError(f"--repeat must be a whole number, got {repeat!r}") from None
    if not 1 <= repeat <= 10:
        raise UsageError(f"--repeat must be between 1 and 10, got {repeat}")
    figures = run_bench(settings, UI(quiet=settings.quiet, verbose=settings.verbose), repeat=repeat)
    render_figures(figures, make_console(sys.stdout))
    if json:
        Path(json).write_text(jsonlib.dumps(figures, indent=2) + "\n")


@guarded
def soak(c, runs=None, labs=None, json=None, name=None, provider=None, workers=None, node_image=None, verbose=False,
         quiet=False):
    """Run lab.all (or --labs) N times on one cluster; report each verdict that differed even once."""
    from .errors import EXIT_INTERRUPTED
    from .soak import as_json, exit_code, lines, parse_runs, selected_labs, soak as run_soak

    runs = parse_runs(runs)
    lab_ids = selected_labs(labs)
    settings = flag_settings(name, provider, workers, node_image, verbose, quiet)
    found = run_soak(settings, lab_ids, runs, UI(quiet=settings.quiet, verbose=settings.verbose))
    # `--json -`: standard output carries the JSON alone; the report goes to standard error.
    out = sys.stderr if json == "-" else sys.stdout
    print("\n".join(lines(found)), file=out)
    if json == "-":
        print(as_json(found))
    elif json:
        Path(json).write_text(as_json(found) + "\n")
    if found.interrupted:
        raise Exit(code=EXIT_INTERRUPTED)
    if exit_code(found):
        raise Exit(code=exit_code(found))


# ---------------------------------------------------------------- images.*

@guarded
def images_save(c, output="svclab-bundle.tar", node_image=None):
    """Write one archive with every image and pinned file the labs need (offline classrooms)."""
    from .bundle import save_bundle

    settings = flag_settings(node_image=node_image)
    manifest = save_bundle(settings, Path(output))
    print(f"wrote {output}: {len(manifest['images'])} images, {len(manifest['files'])} pinned files")


@guarded
def images_load(c, archive="svclab-bundle.tar"):
    """Load a bundle: images into Docker, pinned files into the mirror folder."""
    from .bundle import load_bundle

    settings = flag_settings()
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
    """Compare providers from `lab.all --json` files: svclab report.compare --results a.json,b.json"""
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
    print(report.claims_markdown(labs.load_claims(), _load_results(results)), end="")


@guarded
def html(c, results="", output="svclab-report.html"):
    """Write the HTML report of `lab.all --json` files: svclab report.html --results a.json,b.json --output FILE"""
    from . import html_report

    page = html_report.render_page(_load_results(results), labs.load_claims())
    Path(output).write_text(page, encoding="utf-8")
    print(f"wrote {output} ({len(page.encode()) // 1024} KiB)")


report_ns = Collection("report")
report_ns.add_task(Task(compare, help={"results": "comma-separated JSON result files (lab.all --json), one per run"}))
report_ns.add_task(Task(claims, help={"results": "comma-separated JSON result files, one per provider"}))
report_ns.add_task(Task(html, help={"results": "comma-separated JSON result files (lab.all --json), one per run",
                                    "output": "the HTML file to write (default: svclab-report.html)"}))


@guarded
def compare_providers(c, providers=None, labs=None, json_dir=None, keep=False, name=None, workers=None,
                      node_image=None, verbose=False, quiet=False):
    """Run the labs on each provider, one cluster at a time, and print the behaviour matrix.

    svclab compare --providers metallb,kube-vip,none
    """
    from .compare import compare_providers as run_compare, request_from_flags

    request = request_from_flags(providers=providers, labs=labs, json_dir=json_dir, keep=keep, name=name,
                                 workers=workers, node_image=node_image, verbose=verbose, quiet=quiet)
    code = run_compare(request, make_console(sys.stdout))
    if code:
        raise Exit(code=code)


COMPARE_HELP = {
    "providers": "comma-separated providers, run in this order: metallb, kube-vip, none (each once)",
    "labs": "comma-separated lab ids to run on each provider (default: every lab, as lab.all; "
            "lab folders of your own: svclab --labs DIR compare ...)",
    "json_dir": "folder for each provider's results, <provider>.json as lab.all --json writes it "
                "(default: a new svclab-compare-<date>-<time> folder here)",
    "keep": "keep the clusters this command creates (default: each is deleted once its labs are done, "
            "or when the command is stopped)",
    "name": "cluster name prefix: provider P runs on <prefix>-P, reused if svclab made it with P "
            "(default: svclab-compare)",
    "workers": "worker nodes per cluster (default: a reused cluster's, else 2)",
    "node_image": COMMON_HELP["node_image"],
    "verbose": COMMON_HELP["verbose"],
    "quiet": COMMON_HELP["quiet"],
}


def build_namespace() -> Collection:
    """Every task; the lab.* tasks from the lab folders known now (svclab's own, SVCLAB_LABS)."""
    namespace = Collection()
    namespace.add_task(Task(doctor, help={"json": "print the findings as JSON"}))
    namespace.add_task(Task(bench, help={**COMMON_HELP, "json": "also write the figures as JSON to this file",
                                         "repeat": "bare/svclab cluster pairs to time; medians are reported (default 5)"}))
    namespace.add_task(Task(soak, help={**COMMON_HELP, "runs": "how many times to run the labs, 1 to 1000 (default 3)",
                                        "labs": "comma-separated lab ids (default: every lab, as lab.all)",
                                        "json": "also write the soak report as JSON to this file ('-': standard output)"}))
    namespace.add_collection(cluster)
    namespace.add_collection(lab_collection())
    namespace.add_collection(images_ns)
    namespace.add_collection(report_ns)
    namespace.add_task(Task(compare_providers, name="compare", help=COMPARE_HELP))
    return namespace


namespace = build_namespace()
program = SvclabProgram(namespace=namespace, name="svclab", binary="svclab", version=__version__,
                        rebuild=build_namespace)


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
