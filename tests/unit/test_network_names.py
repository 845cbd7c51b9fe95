"""Two `cluster.up` at once on a machine without svclab's network: Docker creates two networks of
one name; each process keeps the oldest and removes its own if that is not it."""

from svclab.network import MANAGED_LABEL, _one_of_that_name


class FakeApi:
    def __init__(self, networks):
        self.nets, self.removed = list(networks), []

    def networks(self, names):
        return [n for n in self.nets if n["Name"] in names]

    def remove_network(self, net_id):
        self.removed.append(net_id)
        self.nets = [n for n in self.nets if n["Id"] != net_id]


class FakeDocker:
    def __init__(self, networks):
        self.api = FakeApi(networks)


def _net(net_id, created, managed=True, name="svclab"):
    return {"Id": net_id, "Name": name, "Created": created, "Labels": {MANAGED_LABEL: "true"} if managed else {}}


def test_alone_it_keeps_what_it_made():
    dc = FakeDocker([_net("b", "2026-12-02T03:45:02Z")])
    assert _one_of_that_name(dc, "svclab", "b") is True and dc.api.removed == []


def test_the_later_of_two_removes_its_own_and_both_meet_on_the_oldest():
    nets = [_net("a", "2026-12-02T03:45:01Z"), _net("b", "2026-12-02T03:45:02Z")]
    later, earlier = FakeDocker(nets), FakeDocker(nets)
    assert _one_of_that_name(later, "svclab", "b") is False and later.api.removed == ["b"]
    assert _one_of_that_name(earlier, "svclab", "a") is True and earlier.api.removed == []


def test_a_network_svclab_did_not_make_never_wins_and_is_never_removed():
    dc = FakeDocker([_net("x", "2026-01-01T00:00:00Z", managed=False), _net("b", "2026-12-02T03:45:02Z"),
                     _net("c", "2026-12-02T03:45:01Z", name="svclab-edge-x")])
    assert _one_of_that_name(dc, "svclab", "b") is True and dc.api.removed == []
