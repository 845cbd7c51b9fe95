"""Freezing a node: the cgroup v1 freezer's "unable to freeze" is tried again, a bounded number of
times; any other refusal is told at once, in one line."""

import pytest
from docker.errors import APIError

from svclab.errors import SvclabError
from svclab.probes.outage import FREEZE_ATTEMPTS, freeze

GAVE_UP = ("Cannot pause container 092bc: OCI runtime pause failed: unable to freeze: unknown")


class Node:
    """A node container whose pause fails FAILURES times with ERROR, then works."""

    def __init__(self, failures, error=GAVE_UP, paused_anyway=False):
        self.name, self.status = "lab-worker", "running"
        self.failures, self.error, self.paused_anyway, self.tries = failures, error, paused_anyway, 0

    def pause(self):
        self.tries += 1
        if self.tries <= self.failures:
            if self.paused_anyway:
                self.status = "paused"
            raise APIError(self.error)
        self.status = "paused"

    def reload(self):
        pass


def test_a_busy_node_is_frozen_on_a_later_try():
    node = Node(failures=2)
    assert freeze(node) == 3
    assert node.status == "paused" and node.tries == 3


def test_a_freezer_that_keeps_giving_up_is_told_after_the_last_try():
    node = Node(failures=FREEZE_ATTEMPTS)
    with pytest.raises(SvclabError, match=f"lab-worker.*gave up {FREEZE_ATTEMPTS} times"):
        freeze(node)
    assert node.tries == FREEZE_ATTEMPTS and node.status == "running"


def test_another_refusal_is_not_tried_again():
    node = Node(failures=1, error="Container 092bc is not running")
    with pytest.raises(SvclabError, match="could not freeze node lab-worker: Container 092bc is not running"):
        freeze(node)
    assert node.tries == 1


def test_a_node_paused_despite_the_error_is_not_paused_twice():
    node = Node(failures=1, paused_anyway=True)
    assert freeze(node) == 1
    assert node.tries == 1 and node.status == "paused"
