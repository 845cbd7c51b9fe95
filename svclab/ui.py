"""What the user sees while svclab works: the current step, commands when verbose, nothing but
results when quiet.

On a terminal the current step spins (rich's status line) and is left behind as a plain
" • step" line once the next one starts, so the scrollback reads the same as a CI log, where each
step is printed as one plain line. A spinner is stopped before anything else is printed to the
terminal, on any error, and at exit.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.status import Status

__all__ = ["UI", "make_console", "stop_spinners"]

_SPINNING: weakref.WeakSet[UI] = weakref.WeakSet()


def make_console(file=None) -> Console:
    # rich honours NO_COLOR, FORCE_COLOR and TTY_COMPATIBLE itself.
    return Console(file=file or sys.stderr, highlight=False, soft_wrap=True)


def stop_spinners() -> None:
    """Stops every spinner still showing, leaving its step as a plain line."""
    for ui in list(_SPINNING):
        ui.stop()


atexit.register(stop_spinners)


class UI:
    def __init__(self, console: Console | None = None, *, quiet: bool = False, verbose: bool = False):
        self.console = console or make_console()
        self.quiet = quiet
        self.verbose = verbose
        self.started = time.monotonic()
        self._status: Status | None = None
        self._current: str | None = None
        self._lock = threading.RLock()

    @property
    def spins(self) -> bool:
        """Whether steps show as a spinner: only on a real terminal, and never when quiet."""
        return not self.quiet and self.console.is_terminal and not self.console.is_dumb_terminal

    def step(self, message: str) -> None:
        if self.quiet:
            return
        if not self.spins:
            self._line(message)
            return
        with self._lock:
            if self._current is not None:
                self._line(self._current)
            self._current = message
            if self._status is None:
                self._status = self.console.status(escape(message))
                self._status.start()
                _SPINNING.add(self)
            else:
                self._status.update(escape(message))

    def stop(self) -> None:
        """Stops the spinner, if one shows, and leaves its step behind as a plain line."""
        with self._lock:
            status, current = self._status, self._current
            self._status = self._current = None
            _SPINNING.discard(self)
            if status is not None:
                status.stop()
            if current is not None:
                self._line(current)

    @contextmanager
    def working(self, message: str) -> Iterator[None]:
        """A spinner that leaves nothing behind, for a wait between lines printed elsewhere."""
        self.stop()
        if not self.spins:
            yield
            return
        with self.console.status(escape(message)):
            yield

    def done(self, message: str) -> None:
        self.stop()
        if not self.quiet:
            self.console.print(f" [green]✓[/] {escape(message)} [dim]({time.monotonic() - self.started:.0f}s)[/]")

    def warn(self, message: str) -> None:
        self.console.print(f" [yellow]![/] {escape(message)}")

    def error(self, message: str) -> None:
        stop_spinners()
        self.console.print(f"[red]error:[/] {escape(message)}")

    def command(self, line: str) -> None:
        if self.verbose and not self.quiet:
            self.console.print(f"   [dim]{escape(line)}[/]")

    @property
    def echo(self):
        return self.command if self.verbose else None

    def _line(self, message: str) -> None:
        self.console.print(f" [bold]•[/] {escape(message)}")
