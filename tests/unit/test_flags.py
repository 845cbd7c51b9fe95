"""The lab flags, declared once: the invoke arguments and help every lab task gets."""

from __future__ import annotations

import dataclasses

import pytest
from invoke import Context, Exit

from svclab.errors import EXIT_USAGE, UsageError
from svclab.flags import LAB_HELP, LabFlags, lab_task

LAB_FLAGS = ["name", "provider", "workers", "node_image", "json", "junit", "markdown", "html", "diagnostics", "verbose",
             "quiet", "step", "pause", "test", "kubeconfig", "context", "keep", "install", "outside"]


def arguments(task):
    return {arg.name: arg for arg in task.get_arguments()}


def test_a_lab_task_has_every_lab_flag_with_its_help_and_default():
    task = lab_task(lambda flags: None, name="demo", doc="A demo lab.")
    args = arguments(task)
    assert sorted(args) == sorted(LAB_FLAGS)
    assert [field.name for field in dataclasses.fields(LabFlags)] == LAB_FLAGS
    for name, arg in args.items():
        assert arg.help == LAB_HELP[name] and arg.help
    assert args["pause"].default is True and args["pause"].kind is bool
    assert args["step"].default is False and args["json"].default is None and args["json"].kind is str
    assert task.name == "demo" and task.__doc__ == "A demo lab."


def test_short_flags_are_the_shared_ones():
    args = arguments(lab_task(lambda flags: None, name="demo", doc="."))
    shorts = {name: [n for n in arg.names if len(n) == 1] for name, arg in args.items()}
    assert shorts == {**{name: [] for name in LAB_FLAGS}, "name": ["n"], "provider": ["p"], "workers": ["w"],
                      "verbose": ["v"], "quiet": ["q"]}
    assert args["node_image"].names[0] == "node-image"


def test_the_task_hands_its_flags_to_the_run_as_lab_flags():
    seen = []
    task = lab_task(seen.append, name="demo", doc=".")
    task(Context(), name="x", workers="1", step=True)
    assert seen == [LabFlags(name="x", workers="1", step=True)]
    assert seen[0].pause is True and seen[0].json is None


def test_errors_of_the_run_end_the_task_with_their_exit_code():
    def run(flags):
        raise UsageError("labs/x/lab.yaml: broken")

    with pytest.raises(Exit) as raised:
        lab_task(run, name="x", doc=".")(Context())
    assert raised.value.code == EXIT_USAGE


def test_lab_flags_become_settings():
    settings = LabFlags(name="svclab-flags", workers="3", quiet=True).settings()
    assert settings.cluster_name == "svclab-flags" and settings.workers == 3 and settings.quiet
