"""What the user sees while svclab works: one line per step (a spinner is not worth the
complexity for steps this coarse), commands when verbose, nothing but results when quiet."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.markup import escape

__all__ = ["UI", "make_console"]


def make_console(file=None) -> Console:
    # rich honours NO_COLOR, FORCE_COLOR and TTY_COMPATIBLE itself.
    return Console(file=file or sys.stderr, highlight=False, soft_wrap=True)


class UI:
    def __init__(self, console: Console | None = None, *, quiet: bool = False, verbose: bool = False):
        self.console = console or make_console()
        self.quiet = quiet
        self.verbose = verbose
        self.started = time.monotonic()

    def step(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f" [bold]•[/] {escape(message)}")

    def done(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f" [green]✓[/] {escape(message)} [dim]({time.monotonic() - self.started:.0f}s)[/]")

    def warn(self, message: str) -> None:
        self.console.print(f" [yellow]![/] {escape(message)}")

    def error(self, message: str) -> None:
        self.console.print(f"[red]error:[/] {escape(message)}")

    def command(self, line: str) -> None:
        if self.verbose and not self.quiet:
            self.console.print(f"   [dim]{escape(line)}[/]")

    @property
    def echo(self):
        return self.command if self.verbose else None

