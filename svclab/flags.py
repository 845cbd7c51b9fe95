"""Flags the tasks share, declared once with their help, and the settings they stand for.

invoke builds a task's flags from its function's signature; `lab_task` gives every lab task
(lab.<id>, lab.all, a broken lab's stand-in) the signature of `LabFlags`'s fields and their help.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

from .config import Settings, load_settings
from .exits import guarded
from .program import SvclabTask

__all__ = ["COMMON_HELP", "TARGET_HELP", "LAB_HELP", "LabFlags", "flag_settings", "lab_task"]

COMMON_HELP = {
    "name": "cluster name (default: svclab)",
    "provider": "load-balancer implementation: metallb, kube-vip, none",
    "workers": "number of worker nodes (default: the existing cluster's, else 2)",
    "node_image": "kind node image (default: kind's own)",
    "verbose": "show every command svclab runs",
    "quiet": "print only results and errors",
}
# The flags that name a cluster svclab did not make (tasks that can work on one take them).
TARGET_HELP = {
    "kubeconfig": "run on the cluster of this kubeconfig file, which svclab did not make (SVCLAB_KUBECONFIG)",
    "context": "run on the cluster of this kubeconfig context (SVCLAB_CONTEXT; file: --kubeconfig, $KUBECONFIG, ~/.kube/config)",
}


def flag_settings(name=None, provider=None, workers=None, node_image=None, verbose=None, quiet=None,
                  ingress=None, kubeconfig=None, context=None, keep=None, install=None,
                  outside=None) -> Settings:
    """Settings with the given flags on top (flags > SVCLAB_* > svclab.yaml > defaults); with a
    cluster the user named (--kubeconfig/--context), its context made explicit (target.resolve)."""
    from .target import resolve

    return resolve(load_settings({"cluster_name": name, "provider": provider, "workers": workers, "ingress": ingress,
                                  "node_image": node_image, "verbose": verbose or None, "quiet": quiet or None,
                                  "kubeconfig": kubeconfig, "context": context, "keep": keep or None,
                                  "install": install, "outside": outside}))


def _flag(default, help_: str):
    return dataclasses.field(default=default, metadata={"help": help_})


@dataclasses.dataclass(frozen=True)
class LabFlags:
    """What a lab task was asked for (flags as invoke parsed them; settings validate them)."""

    name: str | None = _flag(None, COMMON_HELP["name"])
    provider: str | None = _flag(None, COMMON_HELP["provider"])
    workers: str | None = _flag(None, COMMON_HELP["workers"])
    node_image: str | None = _flag(None, COMMON_HELP["node_image"])
    json: str | None = _flag(None, "also write results as JSON to this file ('-': standard output)")
    junit: str | None = _flag(None, "also write results as JUnit XML to this file")
    markdown: str | None = _flag(None, "also write a Markdown summary to this file "
                                       "(appended to $GITHUB_STEP_SUMMARY when set)")
    html: str | None = _flag(None, "also write an HTML report to this file: each lab's cluster as observed, "
                                   "every probe's path drawn on it, timelines and the claims")
    diagnostics: str | None = _flag(None, "folder for the diagnostics bundle written when a probe differs "
                                          "(default: here)")
    verbose: bool = _flag(False, COMMON_HELP["verbose"])
    quiet: bool = _flag(False, COMMON_HELP["quiet"])
    step: bool = _flag(False, "one probe at a time: predict (on a terminal: pick an answer), observe, explain")
    pause: bool = _flag(True, "with --step, wait for Enter before each probe when stdin is a terminal "
                              "(--no-pause: never)")
    test: str | None = _flag(None, "only the probes matching these comma-separated patterns over lab/probe "
                                   "('!PATTERN' leaves out), e.g. 'loadbalancer/*,!*pending*'")
    kubeconfig: str | None = _flag(None, TARGET_HELP["kubeconfig"])
    context: str | None = _flag(None, TARGET_HELP["context"])
    keep: bool = _flag(False, "on a cluster svclab did not make, keep the labs' namespaces after the run "
                              "(default: delete them)")
    install: str | None = _flag(None, "on a cluster svclab did not make, install this for the run and remove it "
                                      "after: traefik, svclab's Ingress controller (SVCLAB_INSTALL)")
    outside: str | None = _flag(None, "on a cluster svclab did not make, who sends from outside it: auto (a container "
                                      "of svclab's beside kind-like nodes, else this machine), container, "
                                      "this-machine, none, or container:NAME, a running container of yours "
                                      "on the nodes' docker network (SVCLAB_OUTSIDE)")

    def settings(self) -> Settings:
        return flag_settings(self.name, self.provider, self.workers, self.node_image, self.verbose, self.quiet,
                             kubeconfig=self.kubeconfig, context=self.context, keep=self.keep,
                             install=self.install, outside=self.outside)


LAB_HELP = {field.name: field.metadata["help"] for field in dataclasses.fields(LabFlags)}

_SIGNATURE = inspect.Signature([
    inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    *(inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=field.default)
      for field in dataclasses.fields(LabFlags)),
])


def lab_task(run: Callable[[LabFlags], None], *, name: str, doc: str) -> SvclabTask:
    """The task NAME, taking the lab flags, that calls RUN with them (errors end it as exits.py says)."""

    def task(c, **flags):
        run(LabFlags(**flags))

    task.__signature__ = _SIGNATURE
    task.__doc__ = doc
    return SvclabTask(guarded(task), name=name, help=LAB_HELP)
