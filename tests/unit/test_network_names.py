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


# ---------------------------------------------------------------- a subnet taken meanwhile

class _Net:
    def __init__(self, owner, subnet, net_id):
        self.owner, self.id = owner, net_id
        self.attrs = {"IPAM": {"Config": [{"Subnet": subnet, "Gateway": subnet.replace("0/16", "1")}]}}

    def reload(self):
        pass

    def remove(self):
        self.owner.present.remove(self)


class RacingNetworks:
    """Docker's networks, where another process takes the first subnet Docker suggests in the
    moment between svclab's probe and its real create (RACES times)."""

    def __init__(self, races):
        self.races, self.present, self.next_subnet, self.created = races, [], 18, []

    def get(self, name):
        from docker.errors import NotFound
        raise NotFound("no such network")

    def create(self, name, driver, labels, ipam=None, options=None):
        from docker.errors import APIError
        if ipam is None:   # the probe: Docker suggests the next free subnet
            net = _Net(self, f"172.{self.next_subnet}.0.0/16", f"probe{self.next_subnet}")
            self.present.append(net)
            return net
        subnet = ipam["Config"][0]["Subnet"]
        if self.races:
            self.races -= 1
            self.next_subnet += 1   # the other process now holds that subnet
            raise APIError(f"Pool overlaps with other one on this address space ({subnet})")
        net = _Net(self, subnet, "made")
        self.present.append(net)
        self.created.append(subnet)
        return net


class RacingDocker:
    def __init__(self, races):
        self.networks = RacingNetworks(races)
        self.api = FakeApi([{"Name": "svclab", "Id": "made", "Created": "1", "Labels": {MANAGED_LABEL: "true"}}])


def test_a_subnet_taken_between_probe_and_create_is_picked_again():
    from svclab.network import ensure_network

    dc = RacingDocker(races=2)
    assert ensure_network(dc, "svclab") is True
    assert dc.networks.created == ["172.20.0.0/16"]
    assert [n.id for n in dc.networks.present] == ["made"]   # no probe left behind


def test_a_subnet_that_keeps_being_taken_is_told_not_hidden():
    import pytest
    from docker.errors import APIError

    from svclab.network import NETWORK_ATTEMPTS, ensure_network

    dc = RacingDocker(races=NETWORK_ATTEMPTS)
    with pytest.raises(APIError, match="overlaps"):
        ensure_network(dc, "svclab")
    assert dc.networks.present == []
