"""Errors svclab reports to its user, each with the process exit code it maps to.

    SvclabError                 exit 4   an operation failed (a command, the cluster, a wait)
    ├── UsageError              exit 2   bad input: flags, settings, lab definitions, names
    ├── PrerequisiteError       exit 3   something svclab needs is missing on this machine
    └── CommandError            exit 4   a subprocess failed; keeps its command and output

Exit 0 means every probe saw what its lab expects, 1 that at least one did not, 130 that the run
was interrupted, 141 that whoever read svclab's output closed the pipe (as for SIGPIPE). Each error prints as one line: what is wrong, then how to fix it.

How each exception a task raises ends the command (svclab/exits.py's EXIT_RULES, first match):

    exception                                  exit   the line on stderr
    SvclabError and its subclasses             its    the message, then the hint
    docker DockerException, kubernetes         4      its type and the first line of its reason
      ApiException
    urllib3 HTTPError, requests                4      lost the connection to the cluster or its
      RequestException                                client: check cluster.status, or down and up
    KeyboardInterrupt (Ctrl-C, SIGTERM)        130    interrupted
    anything else                              1      a traceback: a bug in svclab
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EXIT_OK",
    "EXIT_MISMATCH",
    "EXIT_USAGE",
    "EXIT_PREREQUISITE",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_CLOSED_PIPE",
    "SvclabError",
    "UsageError",
    "PrerequisiteError",
    "CommandError",
]

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2
EXIT_PREREQUISITE = 3
EXIT_FAILURE = 4
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141


class SvclabError(Exception):
    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class UsageError(SvclabError):
    exit_code = EXIT_USAGE


class PrerequisiteError(SvclabError):
    exit_code = EXIT_PREREQUISITE


class CommandError(SvclabError):
    def __init__(self, argv: Sequence[str], returncode: int, output: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        last = next((line for line in reversed(output.strip().splitlines()) if line.strip()), "")
        super().__init__(f"`{' '.join(self.argv[:3])}` exited {returncode}" + (f": {last.strip()}" if last else ""))
