"""`svclab compare`: the labs on each provider, one cluster at a time, then the behaviour matrix.

Provider P runs on the cluster <prefix>-P. What exists decides, before anything is made, what
happens to each (`plan`, a pure function): a cluster svclab's record shows running P, in the
shape asked for, is reused and left as it was; a missing one is created through `lab.all`'s own
path (session.run_labs → lifecycle.up) and deleted once its labs are done (unless --keep), before
the next provider's is created. Every other state of the name is refused. Each run writes
DIR/P.json, the document `lab.all --json` writes; the matrix is read back from those files, so it
is the one `report.compare` prints over them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from rich.console import Console

from . import labs, lifecycle, report, session
from .cluster import ClusterRecord, check_shape
from .config import PROVIDERS, Settings
from .errors import EXIT_MISMATCH, EXIT_OK, UsageError
from .flags import LabFlags
from .lock import cluster_held
from .ui import UI, stop_spinners

__all__ = ["DEFAULT_PREFIX", "CompareRequest", "Step", "cluster_name", "compare_providers", "default_json_dir",
           "parse_labs", "parse_providers", "plan", "request_from_flags"]

DEFAULT_PREFIX = "svclab-compare"


def _names(text: str | None) -> list[str]:
    return [word.strip() for word in (text or "").split(",") if word.strip()]


def _refuse_repeats(names: Sequence[str], flag: str) -> None:
    repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if repeated:
        raise UsageError(f"{flag} names {repeated!r} twice", hint="name each once")


def parse_providers(text: str | None) -> tuple[str, ...]:
    """The providers of --providers, in the order given: known ones, each once, at least one."""
    names = _names(text)
    if not names:
        raise UsageError("no providers given", hint=f"e.g. --providers {','.join(PROVIDERS)}")
    unknown = next((name for name in names if name not in PROVIDERS), None)
    if unknown:
        raise UsageError(f"unknown provider {unknown!r} in --providers", hint=f"choose from {', '.join(PROVIDERS)}")
    _refuse_repeats(names, "--providers")
    return tuple(names)


def parse_labs(text: str | None, available: Sequence[str]) -> tuple[str, ...]:
    """The labs of --labs (none given: every lab), in AVAILABLE's order, which is lab.all's:
    the labs that cut a node off run last whatever order they were named in."""
    names = _names(text)
    if not names:
        return tuple(available)
    unknown = next((name for name in names if name not in available), None)
    if unknown:
        raise UsageError(f"unknown lab {unknown!r} in --labs", hint="`svclab lab.list` lists the labs")
    _refuse_repeats(names, "--labs")
    return tuple(lab for lab in available if lab in names)


def cluster_name(prefix: str, provider: str) -> str:
    return f"{prefix}-{provider}"


def default_json_dir(now: float | None = None) -> Path:
    """A new folder in the current one, named for when the comparison started."""
    return Path(f"svclab-compare-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}")


@dataclasses.dataclass(frozen=True)
class Step:
    provider: str
    cluster: str
    reuse: bool           # the cluster exists, svclab's record says with this provider
    delete_after: bool    # the comparison creates it and does not keep it

    def describe(self) -> str:
        if self.reuse:
            return f"{self.provider}: reuse cluster {self.cluster} (left as it is)"
        return f"{self.provider}: create cluster {self.cluster}" + (", delete it after its labs" if self.delete_after
                                                                     else ", keep it")


def plan(settings: Mapping[str, Settings], kind_clusters: Collection[str],
         records: Mapping[str, ClusterRecord | None], *, keep: bool) -> list[Step]:
    """What happens to each provider's cluster, in SETTINGS' order (provider → its settings),
    given the kind clusters that exist and svclab's records by cluster name. Raises UsageError
    for a name whose cluster cannot be used, before any cluster is made."""
    steps = []
    for provider, wanted in settings.items():
        name = wanted.cluster_name
        exists, record = name in kind_clusters, records.get(name)
        down = f"run `svclab cluster.down --name {name}`, or choose another --name prefix"
        if exists and record is None:
            raise UsageError(f"a kind cluster named {name} exists but svclab did not create it",
                             hint="svclab leaves it alone; choose another --name prefix")
        if record is not None and not record.complete:
            raise UsageError(f"cluster {name} was left half-made by an `up` that was stopped", hint=down)
        if exists:
            have = record.shape.get("provider")
            if have != provider:
                raise UsageError(f"cluster {name} runs provider {have!r}, not {provider!r}", hint=down)
            check_shape(record, lifecycle.resolve_from_record(wanted, record))
            steps.append(Step(provider, name, reuse=True, delete_after=False))
        else:
            steps.append(Step(provider, name, reuse=False, delete_after=not keep))
    return steps


@dataclasses.dataclass(frozen=True)
class CompareRequest:
    providers: tuple[str, ...]
    labs: tuple[str, ...]
    json_dir: Path
    keep: bool = False
    prefix: str = DEFAULT_PREFIX
    workers: str | None = None
    node_image: str | None = None
    verbose: bool = False
    quiet: bool = False

    def results_file(self, provider: str) -> Path:
        return self.json_dir / f"{provider}.json"

    def flags(self, provider: str) -> LabFlags:
        """The flags of `lab.all` on PROVIDER's cluster, writing its results file (and any
        diagnostics bundle) into the results folder."""
        return LabFlags(name=cluster_name(self.prefix, provider), provider=provider, workers=self.workers,
                        node_image=self.node_image, json=str(self.results_file(provider)),
                        diagnostics=str(self.json_dir), verbose=self.verbose, quiet=self.quiet)

    def settings(self) -> dict[str, Settings]:
        """Each provider's settings; a bad --name, --workers or --node-image is refused here."""
        for provider in self.providers:
            name = cluster_name(self.prefix, provider)
            try:
                Settings(cluster_name=name)
            except UsageError:
                raise UsageError(f"--name {self.prefix!r} makes the invalid cluster name {name!r}",
                                 hint="a prefix of lowercase letters, digits and '-', at most "
                                      f"{40 - len('-kube-vip')} characters") from None
        return {provider: self.flags(provider).settings() for provider in self.providers}


def _available_labs() -> list[str]:
    return labs.available_labs()   # `labs` is a flag in request_from_flags


def request_from_flags(*, providers: str | None, labs: str | None = None, json_dir: str | None = None,
                       keep: bool = False, name: str | None = None, workers: str | None = None,
                       node_image: str | None = None, verbose: bool = False, quiet: bool = False) -> CompareRequest:
    """The comparison `svclab compare`'s flags ask for (as invoke parsed them), checked."""
    return CompareRequest(providers=parse_providers(providers), labs=parse_labs(labs, _available_labs()),
                          json_dir=Path(json_dir) if json_dir else default_json_dir(), keep=keep,
                          prefix=name or DEFAULT_PREFIX, workers=workers, node_image=node_image, verbose=verbose,
                          quiet=quiet)


def compare_providers(request: CompareRequest, console: Console) -> int:
    """Runs the comparison REQUEST asks for and prints the matrix on CONSOLE; EXIT_OK when every
    probe was as expected on every provider, else EXIT_MISMATCH."""
    settings = request.settings()
    for lab_id in request.labs:
        labs.load_lab(lab_id)   # a broken definition is refused before any cluster is made
    _, kind = lifecycle.preflight(next(iter(settings.values())))   # Docker, kind, kubectl, the node image
    steps = plan(settings, kind.clusters(),
                 {s.cluster_name: ClusterRecord.load(s.cluster_dir) for s in settings.values()}, keep=request.keep)
    try:
        request.json_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot make the results folder {request.json_dir} ({e.strerror})",
                         hint="choose another --json-dir") from None
    ui = UI(quiet=request.quiet, verbose=request.verbose)
    for step in steps:
        ui.step(step.describe())
    ui.stop()
    codes = [_run(step, request, settings[step.provider], ui) for step in steps]
    docs = [json.loads(request.results_file(p).read_text()) for p in request.providers]
    report.render_comparison(docs, console)
    files = ",".join(str(request.results_file(p)) for p in request.providers)
    console.print(f"results in {request.json_dir}/ (again: svclab report.compare --results {files})")
    return EXIT_MISMATCH if any(codes) else EXIT_OK


def _run(step: Step, request: CompareRequest, settings: Settings, ui: UI) -> int:
    ui.step(f"provider {step.provider}: {len(request.labs)} lab{'s' if len(request.labs) > 1 else ''} "
            f"on cluster {step.cluster}")
    ui.stop()
    namespaces = [labs.namespace_of(lab_id) for lab_id in request.labs]
    with cluster_held(settings, f"compare ({step.provider})", ui, namespaces=namespaces):
        try:
            outcome = session.run_labs(list(request.labs), request.flags(step.provider))
        except BaseException:
            # Stopped (Ctrl-C, SIGTERM) or failed: lifecycle.up has undone a half-made cluster; one it
            # finished is this comparison's to delete too.
            if step.delete_after:
                _delete_after_stop(settings, ui)
            raise
        if step.delete_after:
            lifecycle.down(settings, ui)
    if not step.delete_after and not step.reuse:
        ui.step(f"kept cluster {step.cluster} (`svclab cluster.down --name {step.cluster}` deletes it)")
        ui.stop()
    return outcome.exit_code


def _delete_after_stop(settings: Settings, ui: UI) -> None:
    """Deletes what is left of the cluster without hiding why the comparison stopped."""
    name = settings.cluster_name
    stop_spinners()   # the lab run's own, if it was stopped mid-step
    ui.warn(f"stopped: deleting cluster {name}, which this comparison created")
    try:
        lifecycle.down(settings, ui)
    except Exception as e:  # noqa: BLE001 - the first failure is the one to report
        ui.warn(f"could not delete cluster {name} ({e}): run `svclab cluster.down --name {name}`")
