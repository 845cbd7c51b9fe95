"""The one table that turns what a task raises into an exit code and one line."""

from __future__ import annotations

import pytest
import requests
import urllib3
from docker.errors import DockerException, NotFound
from invoke import Exit
from kubernetes.client.rest import ApiException

from svclab.errors import (EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_PREREQUISITE, EXIT_USAGE, CommandError,
                           PrerequisiteError, UsageError)
from svclab.exits import exit_for, guarded


@pytest.mark.parametrize("error, code, line", [
    (UsageError("bad name", hint="use lowercase"), EXIT_USAGE, "bad name: use lowercase"),
    (PrerequisiteError("kind was not found"), EXIT_PREREQUISITE, "kind was not found"),
    (CommandError(["kind", "create", "cluster"], 1, "ERROR: boom\n"), EXIT_FAILURE,
     "`kind create cluster` exited 1: ERROR: boom"),
    (DockerException("daemon went away\nmore"), EXIT_FAILURE, "DockerException: daemon went away"),
    (ApiException(status=500, reason="Internal Server Error"), EXIT_FAILURE,
     "ApiException: Internal Server Error"),
    (urllib3.exceptions.ProtocolError("reset"), EXIT_FAILURE, "lost the connection to the cluster"),
    (requests.ConnectionError("refused"), EXIT_FAILURE, "lost the connection to the cluster"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
])
def test_each_exception_has_its_code_and_line(error, code, line):
    got_code, got_line = exit_for(error)
    assert got_code == code
    assert got_line.startswith(line), got_line
    assert "\n" not in got_line


def test_a_subclass_takes_its_parents_rule():
    got = exit_for(NotFound("no such container"))
    assert got[0] == EXIT_FAILURE and got[1].startswith("NotFound: ")


def test_anything_else_is_left_to_its_traceback():
    assert exit_for(ValueError("a bug")) is None

    @guarded
    def task(c):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        task(None)


def test_guarded_prints_one_line_and_exits_with_the_code(capsys):
    @guarded
    def task(c, name=None):
        raise UsageError(f"invalid cluster name {name!r}")

    with pytest.raises(Exit) as raised:
        task(None, name="Bad_Name")
    assert raised.value.code == EXIT_USAGE
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "invalid cluster name 'Bad_Name'" in lines[0]
