import ipaddress

import pytest

from svclab.errors import SvclabError, UsageError
from svclab.network import Pool, carve_pool, load_pool, save_pool, taken_pools


def carve(subnet="172.18.0.0/16", gateway="172.18.0.1", used=(), taken=(), size=16):
    return carve_pool(network="svclab", subnet=subnet, gateway=gateway, used=used, taken=taken, size=size)


def test_pool_comes_from_the_top_of_the_subnet_without_broadcast():
    pool = carve()
    assert pool.client_ip == "172.18.255.238"
    assert (pool.first, pool.last) == ("172.18.255.239", "172.18.255.254")
    assert len(pool.addresses()) == 16
    assert "172.18.255.255" not in pool


def test_pool_skips_used_addresses_and_gateway():
    pool = carve(subnet="10.0.0.0/24", gateway="10.0.0.254", used=["10.0.0.250", "10.0.0.244", "10.0.0.240"], size=8)
    span = range(int(ipaddress.IPv4Address(pool.client_ip)), int(ipaddress.IPv4Address(pool.last)) + 1)
    forbidden = {int(ipaddress.IPv4Address(a)) for a in ("10.0.0.0", "10.0.0.255", "10.0.0.254", "10.0.0.250", "10.0.0.244", "10.0.0.240")}
    assert not forbidden & set(span)
    assert pool.last == "10.0.0.239"


def test_two_clusters_never_overlap():
    first = carve()
    second = carve(taken=[first])
    assert int(ipaddress.IPv4Address(second.last)) < int(ipaddress.IPv4Address(first.client_ip))
    third = carve(taken=[first, second])
    assert not set(third.addresses()) & (set(first.addresses()) | set(second.addresses()))
    assert third.client_ip not in {first.client_ip, second.client_ip}


def test_exhausted_subnet_is_reported():
    with pytest.raises(SvclabError, match="no free block"):
        carve(subnet="10.0.0.0/28", gateway="10.0.0.1", size=16)


def test_ipv6_only_network_is_a_usage_error():
    with pytest.raises(UsageError, match="no IPv4 subnet"):
        carve(subnet="fd00::/64", gateway=None)


def test_membership():
    pool = Pool("n", "10.0.0.0/24", "10.0.0.9", "10.0.0.10", "10.0.0.12")
    assert "10.0.0.11" in pool
    assert "10.0.0.9" not in pool
    assert "not-an-ip" not in pool


def test_pools_persist_per_cluster(tmp_path):
    a = carve()
    save_pool(tmp_path / "clusters" / "a" / "pool.json", a)
    save_pool(tmp_path / "clusters" / "b" / "pool.json", Pool("other", "10.0.0.0/8", "10.0.0.1", "10.0.0.2", "10.0.0.3"))
    assert load_pool(tmp_path / "clusters" / "a" / "pool.json") == a
    assert taken_pools(tmp_path, "svclab") == [a]
    assert taken_pools(tmp_path, "svclab", except_cluster="a") == []
    assert load_pool(tmp_path / "missing.json") is None


def test_damaged_pool_file(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text("{not json")
    with pytest.raises(SvclabError, match="damaged"):
        load_pool(path)


def test_pools_in_use_come_from_client_container_labels():
    import json
    import types

    from svclab.network import CLUSTER_LABEL, POOL_LABEL, Pool, pools_in_use

    mine = Pool("svclab", "172.18.0.0/16", "172.18.255.238", "172.18.255.239", "172.18.255.254")
    other = Pool("svclab", "172.18.0.0/16", "172.18.255.221", "172.18.255.222", "172.18.255.237")
    elsewhere = Pool("other-net", "172.19.0.0/16", "172.19.255.238", "172.19.255.239", "172.19.255.254")

    def container(cluster, pool):
        return types.SimpleNamespace(labels={CLUSTER_LABEL: cluster, POOL_LABEL: pool})

    containers = [container("a", json.dumps(mine.__dict__)), container("b", json.dumps(other.__dict__)),
                  container("c", json.dumps(elsewhere.__dict__)), container("d", "{broken")]
    dc = types.SimpleNamespace(containers=types.SimpleNamespace(list=lambda **kw: containers))
    assert pools_in_use(dc, "svclab", except_cluster="a") == [other]
