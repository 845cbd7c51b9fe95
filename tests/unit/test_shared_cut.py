"""One node cut for several probes (probes/shared_cut.py): made once when the last of them asks,
put back when the last is done; one at a time where they ask for different nodes, too late or
after a member dropped out by failing."""

import threading
import time

from svclab.errors import SvclabError
from svclab.probes.shared_cut import SharedCut


class Cuts:
    """A fake node cut that records what happened when (the real one is probes/outage.cutter)."""

    def __init__(self, fail=False):
        self.events, self.lock, self.fail, self.down = [], threading.Lock(), fail, set()

    def __call__(self, node):
        if self.fail:
            raise SvclabError(f"could not cut {node} off the network: nft says no")
        with self.lock:
            self.events.append(("cut", node))
            self.down.add(node)

        def undo():
            time.sleep(0.05)   # putting back and waiting for the nodes Ready takes a moment
            with self.lock:
                self.events.append(("back", node))
                self.down.discard(node)
        return undo


def run_members(shared, nodes, work=0.05, ask=None):
    """Each of NODES is a member's node (None: the member fails before asking). Returns, per
    member, (shared?, nodes down while inside, nodes down just after) or the exception."""
    out = [None] * len(nodes)

    def member(i, node):
        try:
            with shared.member():
                if ask:
                    ask(i)
                if node is None:
                    raise RuntimeError("probe failed before the cut")
                with shared.cut(node) as together:
                    inside = set(shared._cut.down)
                    time.sleep(work * (i + 1))
                out[i] = (together, inside, set(shared._cut.down))
        except Exception as e:  # noqa: BLE001
            out[i] = e

    threads = [threading.Thread(target=member, args=(i, n)) for i, n in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_one_cut_for_all_made_when_the_last_asks_and_undone_when_the_last_is_done():
    cuts = Cuts()
    shared = SharedCut(3, cuts)
    seen_when_asking = []
    out = run_members(shared, ["w2", "w2", "w2"],
                      ask=lambda i: (time.sleep(0.1 * i), seen_when_asking.append(set(cuts.down))))
    assert seen_when_asking == [set(), set(), set()]    # nothing cut before the last one asked
    assert cuts.events == [("cut", "w2"), ("back", "w2")]
    for together, inside, after in out:
        # each saw the node cut, and none went on before it was back
        assert together is True and inside == {"w2"} and after == set()
    assert shared.state == "over"


def test_a_member_that_fails_before_asking_is_not_waited_for():
    cuts = Cuts()
    shared = SharedCut(3, cuts, gather_seconds=30)
    started = time.monotonic()
    out = run_members(shared, ["w2", None, "w2"])
    assert time.monotonic() - started < 5
    assert isinstance(out[1], RuntimeError)
    assert out[0][0] is True and out[2][0] is True and cuts.events == [("cut", "w2"), ("back", "w2")]


def test_different_nodes_are_cut_one_at_a_time():
    cuts = Cuts()
    out = run_members(SharedCut(2, cuts), ["w1", "w2"])
    assert [o[0] for o in out] == [False, False]
    assert all(len(inside) == 1 for _, inside, _ in out)     # never both down at once
    assert sorted(cuts.events) == [("back", "w1"), ("back", "w2"), ("cut", "w1"), ("cut", "w2")]


def test_a_party_that_never_comes_makes_the_others_cut_alone_after_the_gathering_time():
    cuts = Cuts()
    shared = SharedCut(3, cuts, gather_seconds=0.3)
    out = run_members(shared, ["w2", "w2"])
    assert [o[0] for o in out] == [False, False] and cuts.events.count(("cut", "w2")) == 2


def test_asking_again_after_the_shared_cut_cuts_alone():
    cuts = Cuts()
    shared = SharedCut(1, cuts)
    assert run_members(shared, ["w2"])[0][0] is True
    with shared.member():
        with shared.cut("w2") as together:
            assert together is False and cuts.down == {"w2"}
    assert cuts.events == [("cut", "w2"), ("back", "w2")] * 2


def test_a_cut_that_fails_fails_every_member_and_none_waits():
    shared = SharedCut(2, Cuts(fail=True))
    out = run_members(shared, ["w2", "w2"])
    assert all(isinstance(o, SvclabError) and "nft says no" in str(o) for o in out), out
