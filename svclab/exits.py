"""How an exception ends a command: the exit code and the one line on stderr, from one table
(documented in svclab/errors.py), applied by the `guarded` wrapper every task has."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import requests
import urllib3
from docker.errors import DockerException
from invoke import Exit
from kubernetes.client.rest import ApiException

from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, SvclabError
from .ui import UI

__all__ = ["ExitRule", "EXIT_RULES", "exit_for", "guarded"]


def _first_line(e: BaseException) -> str:
    reason = getattr(e, "explanation", None) or getattr(e, "reason", None) or str(e)
    return str(reason).strip().splitlines()[0][:300] if str(reason).strip() else type(e).__name__


@dataclasses.dataclass(frozen=True)
class ExitRule:
    catches: tuple[type[BaseException], ...]
    code: Callable[[BaseException], int]
    line: Callable[[BaseException], str]


EXIT_RULES: tuple[ExitRule, ...] = (   # the first rule that catches an exception applies
    ExitRule((SvclabError,), lambda e: e.exit_code, str),
    ExitRule((DockerException, ApiException), lambda e: EXIT_FAILURE,
             lambda e: f"{type(e).__name__}: {_first_line(e)}"),
    ExitRule((urllib3.exceptions.HTTPError, requests.RequestException), lambda e: EXIT_FAILURE,
             lambda e: f"lost the connection to the cluster or its client ({type(e).__name__}): "
                       "check `svclab cluster.status`, or run `svclab cluster.down` and `up` again"),
    ExitRule((KeyboardInterrupt,), lambda e: EXIT_INTERRUPTED, lambda e: "interrupted"),
)
_CAUGHT = tuple(kind for rule in EXIT_RULES for kind in rule.catches)


def exit_for(e: BaseException) -> tuple[int, str] | None:
    """The exit code and the error line for E, or None when no rule catches it (a bug: it keeps
    its traceback)."""
    rule = next((rule for rule in EXIT_RULES if isinstance(e, rule.catches)), None)
    return (rule.code(e), rule.line(e)) if rule else None


def guarded(fn):
    """Ends the task with one line on stderr and the exit code EXIT_RULES give its exception."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _CAUGHT as e:
            code, line = exit_for(e)
            UI().error(line)
            raise Exit(code=code) from None

    return wrapper
