"""svclab's own command line, on invoke's parser: only svclab's options.

invoke's Program brings options for running shell commands (``--dry``, ``--pty``, ``--echo``,
``-f FILE`` for its own config, ``--prompt-for-sudo-password`` ...), which mean nothing to svclab
and would be accepted in silence. Here the core options are ``--help [TASK]``, ``--version``,
``--list``, ``--labs DIR`` (more lab folders, as SVCLAB_LABS) and shell completion; every task
flag is long, except the few short flags in ``SHORT_FLAGS``, which mean the same in every task;
parser errors are one line with exit 2. A task in ``MANY_PATHS`` takes any number of paths
after its name (``svclab lab.check labs/a labs/b``), which invoke's parser alone cannot.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from contextlib import contextmanager

from invoke import Argument, Exit, Program, Task
from invoke.completion.complete import complete, print_completion_script
from invoke.exceptions import ParseError

from .errors import EXIT_USAGE
from .labs import LABS_ENV
from .ui import UI

__all__ = ["SHORT_FLAGS", "SvclabProgram", "SvclabTask"]

# One meaning per short flag, across every task.
SHORT_FLAGS = {"name": "n", "provider": "p", "workers": "w", "verbose": "v", "quiet": "q"}
# Tasks that take many paths: each word after the task's name that is not a flag is one more
# --path (a repeatable flag of that task).
MANY_PATHS = {"lab.check": "--path"}


def spread_paths(argv: list[str]) -> list[str]:
    """ARGV with the bare words after a MANY_PATHS task turned into that task's path flag."""
    out, flag = [], None
    for word in argv:
        if word in MANY_PATHS:
            flag = MANY_PATHS[word]
        elif flag and not word.startswith("-") and out[-1] != flag:
            out.append(flag)
        out.append(word)
    return out


class SvclabTask(Task):
    """A task whose flags are long, but for SHORT_FLAGS."""

    def __init__(self, body, **kwargs):
        super().__init__(body, auto_shortflags=False, **kwargs)

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        if name in SHORT_FLAGS:
            opts["names"] = [*opts["names"], SHORT_FLAGS[name]]
        return opts


@contextmanager
def usage_errors():
    """invoke's parser errors (an unknown task or flag) as svclab's usage errors: one line, exit 2."""
    try:
        yield
    except ParseError as e:
        UI().error(f"{str(e).rstrip('!')}: `svclab --list` shows the tasks, `svclab --help TASK` a task's flags")
        raise Exit(code=EXIT_USAGE) from None
    except ValueError as e:   # invoke casting a flag's value to its kind: `--repeat x`
        if m := re.search(r"invalid literal for int\(\) with base 10: ('.*')$", str(e)):
            UI().error(f"{m.group(1)} is not a whole number, and the flag given it takes one: "
                       "`svclab --help TASK` shows each flag")
        else:
            UI().error(f"invalid value: {e}: `svclab --help TASK` shows each flag")
        raise Exit(code=EXIT_USAGE) from None


class SvclabProgram(Program):
    def __init__(self, *args, rebuild: Callable[[], object] | None = None, **kwargs):
        """REBUILD makes the namespace again once --labs has added lab folders."""
        super().__init__(*args, **kwargs)
        self.rebuild = rebuild

    def core_args(self):
        return [
            Argument(names=("help", "h"), optional=True, help="show svclab's help, or a task's (--help TASK), and exit"),
            Argument(names=("version", "V"), kind=bool, default=False, help="show svclab's version and exit"),
            Argument(names=("list", "l"), optional=True, help="list the tasks (--list lab: only the lab.* tasks)"),
            Argument(names=("labs",), kind=str, default="",
                     help=f"more lab folders, beside svclab's own (':' between several; as {LABS_ENV})"),
            Argument(names=("complete",), kind=bool, default=False, help="print completion candidates (used by shells)"),
            Argument(names=("print-completion-script",), kind=str, default="",
                     help="print a completion script for bash, zsh or fish"),
        ]

    def parse_core(self, argv):
        with usage_errors():
            self.normalize_argv(argv)
            self.argv = spread_paths(self.argv)
            self.parse_core_args()
        if self.args.labs.value and self.rebuild:
            given = [self.args.labs.value, os.environ.get(LABS_ENV, "")]
            os.environ[LABS_ENV] = os.pathsep.join(p for p in given if p)
            self.namespace = self.rebuild()
        if self.args.version.value:
            self.print_version()
            raise Exit
        if self.args["print-completion-script"].value:
            print_completion_script(self.args["print-completion-script"].value, self.binary_names)
            raise Exit

    def parse_tasks(self):
        with usage_errors():
            super().parse_tasks()

    def parse_cleanup(self):
        wanted = self.args.help.value
        if wanted is True:
            self.print_help()
            raise Exit
        if wanted:
            if wanted not in self.parser.contexts:
                with usage_errors():
                    raise ParseError(f"No idea what '{wanted}' is")
            self.print_task_help(wanted)
            raise Exit
        listed = self.args.list.value
        if listed:
            self.list_format, self.list_depth = "flat", 0
            if isinstance(listed, str):
                try:
                    self.scoped_collection = self.collection.subcollection_from_path(listed)
                    self.list_root = listed
                except KeyError:
                    with usage_errors():
                        raise ParseError(f"No idea what '{listed}' is") from None
            self.list_tasks()
            raise Exit
        if self.args.complete.value:
            complete(names=self.binary_names, core=self.core, initial_context=self.initial_context,
                     collection=self.collection, parser=self._make_parser())
        if not self.tasks:
            self.print_help()
            raise Exit

    def update_config(self, merge=True):
        # No runtime config file and no command-running overrides: svclab's settings are its own
        # (flags > SVCLAB_* > svclab.yaml > defaults, see config.py).
        self.config.load_overrides({}, merge=False)
        self.config.set_runtime_path(None)
        if merge:
            self.config.merge()

    def print_help(self):
        print(f"Usage: {self.binary} [--help [TASK]] [--version] [--list] TASK [--TASK-OPTIONS] ...")
        print()
        print("Options:")
        print()
        self.print_columns(self.initial_context.help_tuples())
        self.list_format, self.list_depth = "flat", 0
        self.list_tasks()

    def print_task_help(self, name):
        context = self.parser.contexts[name]
        options = context.help_tuples()
        print(f"Usage: {self.binary} {name}{' [--options]' if options else ''}")
        print()
        for line in (inspect.getdoc(self.collection[name]) or "").splitlines():
            print(self.leading_indent + line if line.strip() else "")
        print()
        print("Options:")
        if options:
            self.print_columns(options)
        else:
            print(self.leading_indent + "none")
            print()
