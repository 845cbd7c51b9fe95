"""What svclab publishes on the host, checked on what it asks Docker and kind for: the kind
cluster's API server on loopback (TLS with client certificates) and nothing else. The outside
client publishes no port; no manifest of svclab's binds a port on a node's address. (The same is
checked on a running cluster in tests/e2e/test_exposure.py.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from svclab import network
from svclab.cluster import render_kind_config
from svclab.config import Settings
from svclab.network import Pool

ROOT = Path(__file__).resolve().parents[2]


def test_kind_publishes_only_the_api_server_on_loopback():
    for workers in (0, 2, 5):
        cfg = render_kind_config(Settings(workers=workers))
        assert cfg["networking"]["apiServerAddress"] == "127.0.0.1"
        assert all("extraPortMappings" not in node for node in cfg["nodes"])


class _RecordingAPI:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return {"Id": "c1"} if name == "create_container" else {"name": name, **kwargs}
        return record


class _RecordingDocker:
    def __init__(self):
        self.api = _RecordingAPI()

        class Containers:
            def get(_, name):
                from docker.errors import NotFound
                raise NotFound(name)

        self.containers = Containers()


def test_the_outside_client_publishes_no_port_and_serves_nothing():
    dc = _RecordingDocker()
    pool = Pool(network="svclab", subnet="172.18.0.0/16", client_ip="172.18.255.239",
                first="172.18.255.240", last="172.18.255.254")
    assert network.start_client(dc, cluster="svclab", pool=pool, image="agnhost:test") == "svclab-client-svclab"
    (create,) = [kwargs for name, _, kwargs in dc.api.calls if name == "create_container"]
    (host_config,) = [kwargs for name, _, kwargs in dc.api.calls if name == "create_host_config"]
    assert "ports" not in create
    assert not host_config.get("port_bindings") and not host_config.get("publish_all_ports")
    assert host_config.get("network_mode") is None     # not the host's network
    command = " ".join(create["command"])
    assert "netexec" not in command and "agnhost pause" in command
    assert "ip route del default" in command and "|| exit 1" in command


def _keys(value, key):
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _keys(v, key)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v, key)


def test_no_manifest_of_svclab_binds_a_port_on_a_node_address():
    files = sorted([*(ROOT / "manifests").glob("*.yaml"), *(ROOT / "labs").glob("*/*.yaml")])
    assert len(files) >= 15
    for path in files:
        for doc in yaml.safe_load_all(path.read_text().replace("${", "{")):
            assert not list(_keys(doc, "hostPort")), f"{path.relative_to(ROOT)} asks for a hostPort"
            if path.parent.name == "manifests" and path.name != "kube-vip.yaml":
                # kube-vip must answer ARP on the node's own interface; nothing else needs the node's network
                assert True not in _keys(doc, "hostNetwork"), f"{path.relative_to(ROOT)} uses the node's network"
