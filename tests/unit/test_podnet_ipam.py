"""The test bed's boot-time IPAM plugin: waits for podnet's configuration, then hands host-local the
node's pod CIDR. host-local is replaced by a script that records what it was given."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "scripts" / "testbed" / "node" / "opt" / "cni" / "bin" / "podnet-ipam"
BOOT_CONF = PLUGIN.parents[3] / "etc" / "cni" / "net.d" / "99-svclab-podnet-boot.conflist"

WRITTEN = {"cniVersion": "1.0.0", "name": "svclab-podnet", "plugins": [
    {"type": "ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.2.0/24"}]]}}]}


@pytest.fixture
def node(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "host-local"
    fake.write_text(f'#!/bin/bash\necho "$CNI_COMMAND" > {tmp_path}/called\ncat > {tmp_path}/stdin\necho \'{{"ips":[]}}\'\n')
    fake.chmod(0o755)
    return tmp_path


def run(node: Path, command: str, wait_s: int = 5) -> subprocess.CompletedProcess:
    # What ptp passes its IPAM plugin: the plugin's own section of the boot configuration.
    boot = json.loads(BOOT_CONF.read_text())
    request = {"cniVersion": boot["cniVersion"], "name": boot["name"], **boot["plugins"][0]}
    env = {**os.environ, "CNI_COMMAND": command, "CNI_PATH": str(node / "bin"),
           "PODNET_CONFLIST": str(node / "10-svclab-podnet.conflist"), "PODNET_WAIT_S": str(wait_s)}
    return subprocess.run([str(PLUGIN)], input=json.dumps(request), env=env, capture_output=True, text=True,
                          timeout=wait_s + 10)


def write_conflist(node: Path) -> None:
    (node / "10-svclab-podnet.conflist").write_text(json.dumps(WRITTEN))


def test_add_hands_host_local_the_pod_cidr_podnet_wrote(node):
    write_conflist(node)
    result = run(node, "ADD")
    assert result.returncode == 0, result.stdout
    given = json.loads((node / "stdin").read_text())
    assert given["ipam"]["type"] == "host-local"
    assert given["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24"}]]
    assert given["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert given["name"] == "svclab-podnet"   # the same host-local store as podnet's own configuration


def test_add_waits_until_podnet_writes_its_configuration(node):
    timer = threading.Timer(0.5, write_conflist, args=(node,))
    timer.start()
    try:
        result = run(node, "ADD")
    finally:
        timer.cancel()
    assert result.returncode == 0, result.stdout
    assert (node / "called").read_text().strip() == "ADD"


def test_add_gives_up_with_a_cni_error_at_its_deadline(node):
    result = run(node, "ADD", wait_s=1)
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["code"] == 11 and "within 1s" in error["msg"]
    assert not (node / "called").exists()


def test_del_before_any_pod_cidr_has_nothing_to_release(node):
    result = run(node, "DEL")
    assert result.returncode == 0
    assert not (node / "called").exists()


def test_del_after_podnet_wrote_releases_through_host_local(node):
    write_conflist(node)
    assert run(node, "DEL").returncode == 0
    assert json.loads((node / "stdin").read_text())["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24"}]]


def test_version_goes_straight_to_host_local(node):
    assert run(node, "VERSION").returncode == 0
    assert (node / "called").read_text().strip() == "VERSION"


def test_boot_configuration_sorts_after_the_one_podnet_writes():
    podnet = (PLUGIN.parents[4] / "podnet" / "main.go").read_text()
    assert 'const cniFile = "10-svclab-podnet.conflist"' in podnet
    assert sorted(["10-svclab-podnet.conflist", BOOT_CONF.name])[0] == "10-svclab-podnet.conflist"
