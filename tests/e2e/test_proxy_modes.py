"""kube-proxy's modes (C38): every lab under nftables gives the verdicts it gives under iptables (the
session's MetalLB cluster), lab.rules shows each mode's own structures, and ipvs is refused in one
line where the engine's kernel has no IPVS."""

from __future__ import annotations

import json

import pytest

from .conftest import docker_objects, run_labs, svclab

pytestmark = pytest.mark.e2e
NFT = "svclab-e2e-nft"
IPVS = "svclab-e2e-ipvs"


def _verdicts(data: dict) -> dict[tuple[str, str], bool]:
    return {(r["lab"], r["probe"]): r["passed"] for r in data["results"]}


def test_nftables_gives_the_verdicts_of_iptables(cluster, metallb_all, tmp_path):
    _, iptables, iptables_file = metallb_all
    try:
        svclab("cluster.up", "--name", NFT, "--provider", "metallb", "--quiet",
               env={"SVCLAB_KUBE_PROXY_MODE": "nftables"})
        proc, nftables = run_labs("lab.all", "--name", NFT, tmp_path=tmp_path)
        failed = [r for r in nftables["results"] if not r["passed"]]
        assert proc.returncode == 0 and not failed, json.dumps(failed, indent=2) + proc.stderr
        assert nftables.get("kube_proxy_mode") == "nftables" and iptables.get("kube_proxy_mode") == "iptables"
        assert _verdicts(nftables) == _verdicts(iptables)
        # The one behaviour the mode changes (C40), and each verdict held on its own mode's expectation.
        loopback = {mode: next(r for r in doc["results"] if r["probe"] == "loopback-node-port")
                    for mode, doc in (("iptables", iptables), ("nftables", nftables))}
        assert loopback["iptables"]["facts"]["responses"] == 6 and loopback["nftables"]["facts"]["responses"] == 0
        assert loopback["nftables"]["expected"] == "no answer" != loopback["iptables"]["expected"]

        compared = svclab("report.compare", "--results", f"{iptables_file},{tmp_path / 'lab.all.json'}").stdout
        header = compared.split("behaviour")[0] + compared.split("behaviour")[1].split("\n")[0]
        assert "iptables" in header and "nftables" in header, compared
        assert "verdicts agree across kube-proxy modes" in compared

        # Each mode's own structures: iptables chains on one cluster, nftables chains on the other.
        rules = svclab("lab.rules", "--name", NFT, "--service", "svclab-nodeport/echo").stdout
        assert "kube-proxy nftables" in rules and "-- nftables" in rules and "KUBE-SVC-" not in rules
        assert 'comment "svclab-nodeport/echo' in rules or "svclab-nodeport/echo/" in rules
        classic = svclab("lab.rules", "--name", cluster, "--service", "svclab-nodeport/echo").stdout
        assert "kube-proxy iptables" in classic and "KUBE-SVC-" in classic
    finally:
        svclab("cluster.down", "--name", NFT)
    assert docker_objects("svclab.io/cluster=" + NFT) == {"containers": [], "networks": []}


def test_ipvs_follows_what_the_engines_kernel_has():
    """Where the kernel of Docker's engine has no IPVS (the build hosts), `up` in ipvs mode is
    refused in one line with exit 3 and makes nothing; doctor says the same either way."""
    ipvs_env = {"SVCLAB_KUBE_PROXY_MODE": "ipvs"}
    findings = json.loads(svclab("doctor", "--json", check=False, env=ipvs_env).stdout)
    row = next(f for f in findings if f["check"] == "ipvs")
    if row["status"] == "ok":
        return   # IPVS is loaded here: the refusal does not apply, and doctor said so
    assert row["status"] == "fail", row
    proc = svclab("cluster.up", "--name", IPVS, "--provider", "none", check=False, env=ipvs_env)
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "kube-proxy mode ipvs needs IPVS" in lines[0], proc.stderr
    assert docker_objects("svclab.io/cluster=" + IPVS) == {"containers": [], "networks": []}
    assert json.loads(svclab("cluster.status", "--name", IPVS, "--json").stdout)["exists"] is False
