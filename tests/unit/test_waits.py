import pytest

from svclab.kube import WaitTimeout, poll, wait_until


def test_poll_stops_when_done_and_counts_calls():
    values = iter([None, None, "10.0.0.1", "never reached"])
    result, calls = poll(lambda: next(values), bool, timeout=5, interval=0)
    assert (result, calls) == ("10.0.0.1", 3)


def test_poll_returns_the_last_observation_at_the_deadline():
    result, calls = poll(lambda: "pending", lambda r: r == "ready", timeout=0)
    assert (result, calls) == ("pending", 1)


def test_wait_until_raises_with_what_it_waited_for():
    with pytest.raises(WaitTimeout, match="waiting for the moon"):
        wait_until("the moon", lambda: None, timeout=0, interval=0)


def test_wait_until_gives_up_early_on_a_broken_state():
    with pytest.raises(Exception, match="image cannot be pulled"):
        wait_until("pods", lambda: None, timeout=60, interval=0, fail=lambda: "image cannot be pulled")
