"""The test bed node's guard for Service traffic that kube-proxy has not translated yet, run with
an `iptables` that records its arguments and knows which rules exist."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "testbed" / "node" / "usr" / "local" / "bin" / "hold-service-traffic"
KUBEADM = """apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: {range}
"""


def run(tmp_path: Path, config: str | None) -> tuple[subprocess.CompletedProcess, list[str]]:
    fake = tmp_path / "bin" / "iptables"
    fake.parent.mkdir(exist_ok=True)
    # -C succeeds only for rules the fake has already been asked to append.
    fake.write_text(f"""#!/bin/bash
echo "$*" >> {tmp_path}/calls
if [[ $2 == -C ]]; then grep -qxF -- "-w -A ${{*:3}}" {tmp_path}/calls; fi
""")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "KUBEADM_CONFIG": str(tmp_path / "kubeadm.conf")}
    if config is not None:
        (tmp_path / "kubeadm.conf").write_text(config)
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=10)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return result, calls


def test_untranslated_service_traffic_is_dropped_leaving_and_forwarded(tmp_path):
    result, calls = run(tmp_path, KUBEADM.format(range="10.96.0.0/16"))
    assert result.returncode == 0, result.stderr
    appended = [c for c in calls if c.startswith("-w -A")]
    assert [c.split()[2] for c in appended] == ["OUTPUT", "FORWARD"]
    assert all("-d 10.96.0.0/16" in c and c.endswith("-j DROP") for c in appended)


def test_a_restart_of_kubelet_adds_nothing_twice(tmp_path):
    run(tmp_path, KUBEADM.format(range="10.96.0.0/16"))
    _, calls = run(tmp_path, KUBEADM.format(range="10.96.0.0/16"))
    assert len([c for c in calls if c.startswith("-w -A")]) == 2


def test_only_the_ipv4_part_of_a_dual_stack_range_is_held(tmp_path):
    _, calls = run(tmp_path, KUBEADM.format(range="10.96.0.0/16,fd00:10:96::/112"))
    assert {c.split()[4] for c in calls if c.startswith("-w -A")} == {"10.96.0.0/16"}


def test_without_a_kubeadm_config_nothing_is_held(tmp_path):
    result, calls = run(tmp_path, None)
    assert result.returncode == 0
    assert "nothing held" in result.stdout
    assert calls == []
