"""Cancellation that belongs to one operation, and the worker threads that operation starts.

Python delivers Ctrl-C (and svclab's SIGTERM) to the main thread only; waits running in worker
threads would run out their deadlines. An operation that starts threads makes a `Workers`: each
of its threads has the operation's `Cancel` bound, so every `poll`/`wait_until` it runs (without
a token of its own) stops at its next round once the operation is interrupted or one of its
threads fails, and the operation joins the threads it holds before it undoes anything.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Cancel", "WaitCancelled", "Workers", "bound_cancel"]


class WaitCancelled(Exception):
    """Raised inside a wait whose operation was cancelled."""


class Cancel:
    """One operation's cancellation: set once, seen by every wait that was given it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def pause(self, seconds: float) -> None:
        """Waits SECONDS, or raises WaitCancelled as soon as the operation is cancelled."""
        if self._event.wait(seconds):
            raise WaitCancelled()

    @contextlib.contextmanager
    def bound(self) -> Iterator[Cancel]:
        """Makes this the token of the waits this thread runs without one of their own."""
        reset = _bound.set(self)
        try:
            yield self
        finally:
            _bound.reset(reset)


_bound: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("svclab_cancel", default=None)


def bound_cancel() -> Cancel | None:
    """The token bound in this thread by the operation running it, if any."""
    return _bound.get()


_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Holds Ctrl-C and SIGTERM back until a new thread is started and recorded: raised inside
    Thread.start(), their KeyboardInterrupt would leave a running thread nobody holds, which no
    undo would wait for.

    The hold is at Python's level, not the process's signal mask: the kernel hands a process's
    signal to any thread that does not block it, and Python raises it in the main thread whichever
    thread took it. So the main thread's handlers are swapped for ones that only record, and a
    recorded signal goes to the real handler once the thread is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {number: signal.signal(number, lambda n, _frame: arrived.append(n)) for number in _INTERRUPTS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(arrived):
            handler = previous[number]
            if callable(handler):
                handler(number, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(number)


class Workers:
    """Threads one operation starts and holds. Used as a context manager, it cancels them when
    the block raises (a failure, Ctrl-C) and always joins every one it started."""

    def __init__(self, name: str, cancel: Cancel | None = None):
        self.name = name
        self.cancel = cancel or Cancel()
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """Runs FN(*ARGS, **KWARGS) in a new thread with this operation's token bound."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def body() -> None:
            if not future.set_running_or_notify_cancel():
                return
            with self.cancel.bound():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as e:  # noqa: BLE001 - handed to whoever holds the future
                    future.set_exception(e)
                else:
                    future.set_result(result)

        thread = threading.Thread(target=body, name=f"{self.name}-{len(self._threads)}")
        with _interrupts_held():
            thread.start()
            self._threads.append(thread)
        return future

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self.cancel.set()
        self.join()
