"""One node cut for several labs at once: the last stage of lab.all, where the labs that cut off a
node to watch their own path route around it (the BGP router withdrawing a path, HAProxy marking a
server DOWN, DNS round-robin clients meeting a dead address) would otherwise cut it one after
another.

Every probe that will cut joins (`member`) before it runs. The cut comes when the last member
asks for it: if they all ask for the same node, that node is cut once, and each probe watches its
own path from that moment; the node is put back when the last of them is done, and each waits for
the nodes to be Ready again before it goes on, as with a cut of its own. A member that ends
without asking (its probe failed before the cut) is no longer waited for. Members that ask for
different nodes, or ask after the shared cut is over (a probe observing again), or ask once
GATHER_SECONDS have passed without the others, cut one at a time, each alone, as before.

Nothing else runs meanwhile: the labs' other probes have finished before this stage.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from ..cancel import WaitCancelled, bound_cancel
from ..errors import SvclabError

__all__ = ["SharedCut"]

GATHER_SECONDS = 90.0   # what a member may take to get ready for the cut (HAProxy waits for its server UP first)


class SharedCut:
    """A cut of one node shared by PARTIES probes. CUT(node) cuts a node off and returns the undo
    (put it back and wait for the nodes Ready); each member calls `cut` in its own thread."""

    def __init__(self, parties: int, cut: Callable[[str], Callable[[], None]], *,
                 gather_seconds: float = GATHER_SECONDS, restore_seconds: float = 300.0):
        self.parties, self._cut = parties, cut
        self.gather_seconds, self.restore_seconds = gather_seconds, restore_seconds
        self._cond = threading.Condition()
        self._members: set[int] = set()        # threads that joined and have not asked yet
        self._asked: dict[int, str] = {}       # thread -> node it asked for
        self.state = "gathering"               # then "cut" (shared), "failed", "alone" (one at a time) or "over"
        self.node: str | None = None
        self._error: str | None = None
        self._inside = 0                       # members inside the shared cut
        self._restored = threading.Event()
        self._alone = threading.Lock()         # the cuts made one at a time

    @contextlib.contextmanager
    def member(self) -> Iterator[None]:
        """The calling thread is one of the parties until the block ends."""
        me = threading.get_ident()
        with self._cond:
            self._members.add(me)
        try:
            yield
        finally:
            with self._cond:
                if me in self._members:   # never asked: the others no longer wait for it
                    self._members.discard(me)
                    self.parties -= 1
                    self._decide()

    def _decide(self) -> None:
        """With the lock held: once every remaining party has asked, make the shared cut or fall
        back to cuts one at a time."""
        if self.state != "gathering" or len(self._asked) < self.parties:
            return
        nodes = set(self._asked.values())
        if len(nodes) != 1:
            self.state = "alone"
        else:
            self.node = nodes.pop()
            try:
                self._undo = self._cut(self.node)
                self.state = "cut"
                self._inside = len(self._asked)
            except Exception as e:  # noqa: BLE001 - every member reports it
                self.state, self._error = "failed", str(e)
        self._cond.notify_all()

    @contextlib.contextmanager
    def cut(self, node: str) -> Iterator[bool]:
        """NODE cut off for the block; yields True where the cut is shared, False where this
        member cut alone."""
        me = threading.get_ident()
        deadline = time.monotonic() + self.gather_seconds
        with self._cond:
            joined = me in self._members and self.state == "gathering"
            if joined:
                self._members.discard(me)
                self._asked[me] = node
                self._decide()
                while self.state == "gathering":
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.state = "alone"
                        self._cond.notify_all()
                        break
                    self._cond.wait(min(remaining, 0.2))
                    self._check_cancel()
            shared = joined and self.state == "cut"
            if joined and self.state == "failed":
                raise SvclabError(self._error or f"could not cut {node} off the network")
        if not shared:
            with self._alone:
                undo = self._cut(node)
                try:
                    yield False
                finally:
                    undo()
            return
        try:
            yield True
        finally:
            self._leave()

    def _leave(self) -> None:
        """A member is done: the last one puts the node back; each waits until it is back."""
        with self._cond:
            self._inside -= 1
            last = self._inside == 0
        if last:
            try:
                self._undo()
            finally:
                with self._cond:
                    self.state = "over"
                self._restored.set()
            return
        deadline = time.monotonic() + self.restore_seconds
        while not self._restored.wait(0.2):
            self._check_cancel()
            if time.monotonic() > deadline:
                raise SvclabError(f"node {self.node} was not put back within {self.restore_seconds:g}s "
                                  "of the shared cut")

    @staticmethod
    def _check_cancel() -> None:
        cancel = bound_cancel()
        if cancel is not None and cancel.is_set():
            raise WaitCancelled()
