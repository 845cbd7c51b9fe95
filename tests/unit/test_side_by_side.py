"""lab.all's labs side by side: at most SIDE_BY_SIDE at once; the `alone` labs, and the probes of
the disruptive labs that change the cluster, by themselves afterwards; results in the labs' order,
and a stopped run starting no waiting lab."""

import dataclasses
import threading
import time
import types

import pytest

from svclab import labs


@dataclasses.dataclass(frozen=True)
class FakeProbe:
    id: str
    changes: bool = False

    def changes_cluster(self):
        return self.changes


@dataclasses.dataclass(frozen=True)
class FakeLab:
    id: str
    disruptive: bool = False
    alone: bool = False
    probes: tuple = (FakeProbe("a"), FakeProbe("b"))


class Recorder:
    def __init__(self, seconds=0.05):
        self.lock, self.running, self.most, self.events, self.seconds = threading.Lock(), 0, 0, [], seconds

    def run_lab(self, env, lab, topologies=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.events.append(("start", lab.id, self.running))
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
            self.events.append(("end", lab.id))
        return [f"{lab.id}/a", f"{lab.id}/b"]


def test_at_most_side_by_side_at_once_and_the_lone_ones_by_themselves_after(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(labs, "run_lab", recorder.run_lab)
    selected = [FakeLab(f"l{i}") for i in range(7)] + [FakeLab("quiet", alone=True), FakeLab("hush", alone=True)]
    results = labs.run_labs(None, selected, side_by_side=3)
    assert results == [f"{lab.id}/{p}" for lab in selected for p in "ab"]
    assert recorder.most == 3
    starts = [e for e in recorder.events if e[0] == "start"]
    # The lone labs start after every other lab ended, each with nothing else running.
    last_end_of_others = max(i for i, e in enumerate(recorder.events) if e[0] == "end" and e[1].startswith("l"))
    for name in ("quiet", "hush"):
        index = recorder.events.index(next(e for e in starts if e[1] == name))
        assert index > last_end_of_others and recorder.events[index][2] == 1


def test_a_disruptive_lab_looks_with_the_others_and_changes_the_cluster_by_itself_after(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(labs, "run_lab", recorder.run_lab)
    cut = FakeLab("cut", disruptive=True, probes=(FakeProbe("look"), FakeProbe("stop-node", changes=True),
                                                  FakeProbe("look-again"), FakeProbe("restart", changes=True)))
    opened = []
    monkeypatch.setattr(labs, "open_lab", lambda env, lab, topologies=None: opened.append(lab.id) or lab)
    monkeypatch.setattr(labs, "run_order", lambda lab, provider, mode: [[p for p in lab.probes if not p.changes],
                                                                        *([p] for p in lab.probes if p.changes)])

    def run_batches(lab, batches):
        recorder.run_lab(None, types.SimpleNamespace(id="+".join(p.id for b in batches for p in b)))
        return [types.SimpleNamespace(probe=p.id) for b in reversed(batches) for p in b]

    monkeypatch.setattr(labs, "run_batches", run_batches)
    env = types.SimpleNamespace(provider=types.SimpleNamespace(name="metallb", one_name_at_a_time=False),
                                kube_proxy_mode="iptables")
    selected = [FakeLab("l0"), cut, FakeLab("l1"), FakeLab("quiet", alone=True)]
    results = labs.run_labs(env, selected)
    assert opened == ["cut"]   # once: the changing probes use the context of the looking ones
    assert [getattr(r, "probe", r) for r in results] == [
        "l0/a", "l0/b", "look", "stop-node", "look-again", "restart", "l1/a", "l1/b", "quiet/a", "quiet/b"]
    starts = [e[1] for e in recorder.events if e[0] == "start"]
    assert set(starts[:3]) == {"l0", "look+look-again", "l1"}
    assert starts[3:] == ["stop-node+restart", "quiet"]   # by themselves, in the labs' order
    assert all(e[2] == 1 for e in recorder.events if e[0] == "start" and e[1] in starts[3:])


def test_the_longest_labs_start_first_and_each_lab_s_time_is_given_back(monkeypatch):
    recorder = Recorder(seconds=0.02)
    monkeypatch.setattr(labs, "run_lab", recorder.run_lab)
    selected = [FakeLab(i) for i in ("short", "long", "new", "mid", "quiet")]
    selected[-1] = FakeLab("quiet", alone=True)
    took = {}
    results = labs.run_labs(None, selected, side_by_side=1, took=took,
                            times={"short": 0.5, "long": 20.0, "mid": 3.0, "quiet": 9.0})
    assert [e[1] for e in recorder.events if e[0] == "start"] == ["new", "long", "mid", "short", "quiet"]
    assert results == [f"{lab.id}/{p}" for lab in selected for p in "ab"]   # reported in the labs' order
    assert sorted(took) == sorted(lab.id for lab in selected) and all(t >= 0.02 for t in took.values())


def test_one_at_a_time_when_asked(monkeypatch):
    recorder = Recorder(seconds=0.01)
    monkeypatch.setattr(labs, "run_lab", recorder.run_lab)
    labs.run_labs(None, [FakeLab(f"l{i}") for i in range(4)], side_by_side=1)
    assert recorder.most == 1


def test_a_failing_lab_ends_the_run_and_the_waiting_labs_never_start(monkeypatch):
    started = []

    def run_lab(env, lab, topologies=None):
        started.append(lab.id)
        if lab.id == "l0":
            raise RuntimeError("lab l0 broke")
        time.sleep(0.3)
        return []

    monkeypatch.setattr(labs, "run_lab", run_lab)
    with pytest.raises(RuntimeError, match="l0 broke"):
        labs.run_labs(None, [FakeLab(f"l{i}") for i in range(6)], side_by_side=2)
    assert "l5" not in started   # still waiting its turn when the run stopped: cancelled, not started


def test_labs_whose_load_balancers_share_a_name_take_turns_where_the_provider_needs_it(monkeypatch):
    recorder = Recorder(seconds=0.05)
    monkeypatch.setattr(labs, "run_lab", recorder.run_lab)
    shared = {"a": {"echo"}, "b": {"echo", "echo-direct"}, "c": {"other"}, "d": set()}
    monkeypatch.setattr(labs, "load_balancer_names", lambda lab: frozenset(shared[lab.id]))
    selected = [FakeLab(i) for i in "abcd"]

    def overlapped(env):
        recorder.events.clear()
        labs.run_labs(env, selected)
        running, pairs = set(), set()
        for event in recorder.events:
            if event[0] == "start":
                pairs |= {frozenset((event[1], other)) for other in running}
                running.add(event[1])
            else:
                running.discard(event[1])
        return pairs

    kube_vip = types.SimpleNamespace(provider=types.SimpleNamespace(one_name_at_a_time=True))
    metallb = types.SimpleNamespace(provider=types.SimpleNamespace(one_name_at_a_time=False))
    assert frozenset("ab") not in overlapped(kube_vip)
    assert frozenset("ac") in overlapped(kube_vip) or frozenset("bc") in overlapped(kube_vip)
    assert frozenset("ab") in overlapped(metallb)


def test_the_load_balancer_names_of_a_lab_come_from_its_manifests():
    found = {lab_id: labs.load_balancer_names(labs.load_lab(lab_id)) for lab_id in labs.lab_ids()}
    assert found["loadbalancer"] == {"echo"}
    assert found["no-node-ports"] == {"echo-ported", "echo-direct"}
    assert found["clusterip"] == frozenset()
    assert found["pending"] == frozenset()    # of a class no provider implements


def test_no_two_labs_name_a_load_balancer_service_alike():
    # A lab's namespace stays after it ran: on kube-vip a later lab's Service of the same name
    # would get no announcer, so each name belongs to one lab.
    owners: dict[str, list[str]] = {}
    for lab_id in labs.lab_ids():
        for name in labs.load_balancer_names(labs.load_lab(lab_id)):
            owners.setdefault(name, []).append(lab_id)
    assert {name: ids for name, ids in owners.items() if len(ids) > 1} == {}


def test_a_name_held_in_another_namespace_is_found():
    def svc(namespace, name, type_="LoadBalancer", cls=None):
        spec = {"type": type_} | ({"loadBalancerClass": cls} if cls else {})
        return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}

    services = [svc("svclab-a", "echo"), svc("svclab-b", "echo"), svc("svclab-c", "echo", "ClusterIP"),
                svc("svclab-d", "echo", cls="example.com/other"), svc("svclab-e", "web")]
    assert labs.name_taken_elsewhere(frozenset({"echo"}), "svclab-b", services) == ["svclab-a/echo"]
    assert labs.name_taken_elsewhere(frozenset({"echo"}), "svclab-a", services[:1]) == []
    assert labs.name_taken_elsewhere(frozenset(), "svclab-x", services) == []


@dataclasses.dataclass(frozen=True)
class FakeCut:
    id: str
    cut_off: bool = True

    def changes_cluster(self):
        return True


def test_the_labs_that_cut_a_node_watch_one_cut_together_after_the_others(monkeypatch):
    events, lock = [], threading.Lock()

    def cutter(ctx):
        def cut(node):
            events.append(("cut", node))
            return lambda: events.append(("back", node))
        return cut

    def run_batches(ctx, batches):
        out = []
        for batch in batches:
            for p in batch:
                if p.changes_cluster() and ctx.shared_cut:
                    with ctx.shared_cut.member(), ctx.shared_cut.cut("w2") as together:
                        with lock:
                            events.append(("inside", ctx.id, together))
                        time.sleep(0.2)
                elif p.changes_cluster():   # as outage.cut_off without a shared cut
                    back = cutter(ctx)("w2")
                    events.append(("inside", ctx.id, False))
                    back()
                out.append(types.SimpleNamespace(probe=p.id))
        return out

    monkeypatch.setattr(labs, "cutter", cutter)
    monkeypatch.setattr(labs, "run_batches", run_batches)
    monkeypatch.setattr(labs, "run_lab", Recorder().run_lab)
    monkeypatch.setattr(labs, "open_lab", lambda env, lab, topologies=None: types.SimpleNamespace(id=lab.id,
                                                                                                shared_cut=None))
    monkeypatch.setattr(labs, "run_order", lambda lab, provider, mode: [
        b for b in ([p for p in lab.probes if not p.changes_cluster()], *([p] for p in lab.probes if p.changes_cluster()))
        if b])
    env = types.SimpleNamespace(provider=types.SimpleNamespace(name="metallb", one_name_at_a_time=False),
                                kube_proxy_mode="iptables")
    cutting = [FakeLab(name, disruptive=True, probes=(FakeProbe("look"), FakeCut("node-cut")))
               for name in ("bgp", "dns", "elb")]
    twice = FakeLab("twice", disruptive=True, probes=(FakeCut("first"), FakeCut("second")))
    started = time.monotonic()
    results = labs.run_labs(env, [*cutting, twice, FakeLab("l0")])
    # one cut for the three, each inside it at once; the lab with two cuts makes them alone afterwards
    assert events[0] == ("cut", "w2") and events[4] == ("back", "w2")
    assert sorted(e[1:] for e in events[1:4]) == [("bgp", True), ("dns", True), ("elb", True)]
    assert events[5:] == [("cut", "w2"), ("inside", "twice", False), ("back", "w2"),
                          ("cut", "w2"), ("inside", "twice", False), ("back", "w2")]
    assert time.monotonic() - started < 1.5    # 0.2 s for the shared cut, not 0.6
    assert [r if isinstance(r, str) else r.probe for r in results] == [
        "look", "node-cut", "look", "node-cut", "look", "node-cut", "first", "second", "l0/a", "l0/b"]
