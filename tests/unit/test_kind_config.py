import pytest

from svclab.cluster import BACKEND_NODE_LABEL, ClusterRecord, check_shape, render_kind_config, shape_of
from svclab.config import Settings
from svclab.errors import UsageError


def test_default_shape_is_one_control_plane_and_two_workers():
    from svclab.lifecycle import resolve_from_record

    cfg = render_kind_config(resolve_from_record(Settings(), None))
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    assert cfg["nodes"][1]["labels"] == {BACKEND_NODE_LABEL: "true"}
    assert "labels" not in cfg["nodes"][2]
    assert cfg["networking"]["kubeProxyMode"] == "iptables"


def test_single_node_cluster_hosts_the_backends():
    cfg = render_kind_config(Settings(workers=0, kube_proxy_mode="nftables", cluster_name="solo"))
    assert cfg["name"] == "solo"
    assert cfg["nodes"] == [{"role": "control-plane", "labels": {BACKEND_NODE_LABEL: "true"}}]
    assert cfg["networking"]["kubeProxyMode"] == "nftables"


def test_shape_mismatch_is_refused():
    record = ClusterRecord("svclab", shape_of(Settings(workers=2)))
    check_shape(record, Settings(workers=2))
    with pytest.raises(UsageError, match="workers=2, not 3"):
        check_shape(record, Settings(workers=3))


def test_record_round_trip(tmp_path):
    from svclab.config import Settings

    settings = Settings(cluster_name="c", state_dir=tmp_path / "state")
    folder = settings.make_cluster_dir()
    for private in (settings.state_dir, settings.state_dir / "clusters", folder):
        assert private.stat().st_mode & 0o077 == 0
    started = ClusterRecord("c", {"workers": 2}, complete=False)
    started.save(folder)
    assert ClusterRecord.load(folder) == started and not ClusterRecord.load(folder).complete
    ClusterRecord("c", {"workers": 2}).save(folder)
    assert ClusterRecord.load(folder).complete
    (folder / "cluster.json").write_text('{"name": "c", "shape": {}}')  # written before `complete` existed
    assert ClusterRecord.load(folder).complete
    assert ClusterRecord.load(tmp_path / "missing") is None


def test_unset_workers_and_provider_follow_the_existing_cluster():
    from svclab.lifecycle import resolve_from_record

    record = ClusterRecord("svclab", {"workers": 4, "provider": "kube-vip"})
    resolved = resolve_from_record(Settings(), record)
    assert (resolved.workers, resolved.provider) == (4, "kube-vip")
    explicit = resolve_from_record(Settings(workers=1, provider="none"), record)
    assert (explicit.workers, explicit.provider) == (1, "none")   # then check_shape refuses the mismatch
    assert (resolve_from_record(Settings(), None).workers, resolve_from_record(Settings(), None).provider) == (2, "metallb")


def test_the_whole_shape_follows_the_existing_cluster_unless_given():
    from svclab.config import load_settings
    from svclab.lifecycle import resolve_from_record

    record = ClusterRecord("svclab", {"workers": 1, "provider": "none", "node_image": "svclab.local/kind-node:v1",
                                      "kube_proxy_mode": "nftables", "network": "svclab"})
    resolved = resolve_from_record(load_settings({}, env={}), record)
    assert (resolved.node_image, resolved.kube_proxy_mode, resolved.workers) == ("svclab.local/kind-node:v1", "nftables", 1)
    check_shape(record, resolved)
    # Given, even as the default value, a setting is kept, and the mismatch names where it came from.
    given = resolve_from_record(load_settings({}, env={"SVCLAB_KUBE_PROXY_MODE": "iptables"}), record)
    assert given.kube_proxy_mode == "iptables"
    with pytest.raises(UsageError) as e:
        check_shape(record, given)
    assert e.value.message == "cluster svclab exists with kube_proxy_mode='nftables', and SVCLAB_KUBE_PROXY_MODE asks for 'iptables'"
    assert "drop SVCLAB_KUBE_PROXY_MODE" in e.value.hint
    flagged = resolve_from_record(load_settings({"node_image": "other:v2"}, env={}), record)
    with pytest.raises(UsageError, match="node_image='svclab.local/kind-node:v1', and --node-image asks for 'other:v2'"):
        check_shape(record, flagged)
