"""Cancellation scoped to one operation: its token, the waits it reaches, the threads it holds."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from svclab.cancel import Cancel, WaitCancelled, Workers, bound_cancel
from svclab.kube import poll, wait_until


def never():
    return False


def test_a_wait_given_a_set_token_stops_at_its_next_round():
    cancel = Cancel()
    cancel.set()
    started = time.monotonic()
    with pytest.raises(WaitCancelled):
        wait_until("never", never, timeout=60, interval=0.05, cancel=cancel)
    with pytest.raises(WaitCancelled):
        poll(never, bool, timeout=60, interval=0.05, cancel=cancel)
    assert time.monotonic() - started < 1


def test_waits_without_a_token_are_not_cancelled_by_another_operation():
    other = Cancel()
    other.set()
    seen, calls = poll(never, bool, timeout=0.2, interval=0.05)
    assert seen is False and calls > 1
    assert bound_cancel() is None


def test_a_bound_token_reaches_waits_that_pass_none_and_is_unbound_afterwards():
    cancel = Cancel()
    with cancel.bound():
        assert bound_cancel() is cancel
        cancel.set()
        with pytest.raises(WaitCancelled):
            wait_until("never", never, timeout=60, interval=0.05)
    assert bound_cancel() is None


def test_an_explicit_token_wins_over_the_bound_one():
    cancelled, running = Cancel(), Cancel()
    cancelled.set()
    with cancelled.bound():
        _, calls = poll(never, bool, timeout=0.2, interval=0.05, cancel=running)
    assert calls > 1


def test_workers_bind_their_token_in_each_thread_and_join_them():
    with Workers("test-bind") as workers:
        future = workers.submit(bound_cancel)
    assert future.result() is workers.cancel
    assert not workers.cancel.is_set()
    assert threading.active_count() == 1


def test_an_error_in_the_block_cancels_the_waits_of_the_workers_threads():
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the block failed"):
        with Workers("test-fail") as workers:
            future = workers.submit(wait_until, "never", never, timeout=60, interval=0.05)
            raise RuntimeError("the block failed")
    assert isinstance(future.exception(), WaitCancelled)
    assert time.monotonic() - started < 5
    assert threading.active_count() == 1


def test_two_operations_do_not_cancel_each_other():
    with pytest.raises(RuntimeError):
        with Workers("test-first"):
            raise RuntimeError("first operation failed")
    with Workers("test-second") as second:
        future = second.submit(poll, never, bool, timeout=0.2, interval=0.05)
    assert future.result()[1] > 1


@pytest.mark.parametrize("attempt", range(20))
def test_an_interrupt_while_a_thread_starts_arrives_after_the_thread_is_held(monkeypatch, attempt):
    """A signal delivered inside Thread.start() is held back until the thread is recorded, so the
    interrupted operation still joins it (and cancels its waits). The kernel may hand the signal to
    the new thread rather than the main one, so this is a race: it runs many times."""
    real_start = threading.Thread.start

    def start_then_interrupt(self):
        real_start(self)
        os.kill(os.getpid(), signal.SIGINT)

    # A test runner started in the background inherits SIGINT ignored: Ctrl-C as a terminal's
    # foreground job gets it, Python's default handler, for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with Workers("test-interrupt") as workers:
                monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
                try:
                    workers.submit(wait_until, "never", never, timeout=60, interval=0.05)
                finally:
                    monkeypatch.undo()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(workers._threads) == 1 and not workers._threads[0].is_alive()
    assert time.monotonic() - started < 5
    assert threading.active_count() == 1
