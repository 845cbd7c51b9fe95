"""`svclab compare` without clusters: its flags, the plan (which clusters are reused, created and
deleted, from what exists), and the order of the runs, with session and lifecycle stood in for."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from svclab import compare
from svclab.cluster import ClusterRecord
from svclab.config import Settings
from svclab.errors import EXIT_MISMATCH, EXIT_OK, UsageError
from svclab.session import LabRun

LABS = ("clusterip", "nodeport", "failover")   # lab.all's order: failover cuts a node off, last


@pytest.mark.parametrize("text, providers", [
    ("metallb,kube-vip,none", ("metallb", "kube-vip", "none")),
    ("none, metallb", ("none", "metallb")),
    ("kube-vip,", ("kube-vip",)),
])
def test_providers_in_the_order_given(text, providers):
    assert compare.parse_providers(text) == providers


@pytest.mark.parametrize("text, message", [
    (None, "no providers given"), ("", "no providers given"), (" , ", "no providers given"),
    ("metallb,f5", "unknown provider 'f5'"), ("none,metallb,none", "--providers names 'none' twice"),
])
def test_bad_provider_lists_are_refused(text, message):
    with pytest.raises(UsageError, match=message):
        compare.parse_providers(text)


def test_labs_default_to_every_lab_and_keep_lab_alls_order():
    assert compare.parse_labs(None, LABS) == LABS
    assert compare.parse_labs("failover,clusterip", LABS) == ("clusterip", "failover")
    with pytest.raises(UsageError, match="unknown lab 'nope'"):
        compare.parse_labs("nodeport,nope", LABS)
    with pytest.raises(UsageError, match="twice"):
        compare.parse_labs("nodeport,nodeport", LABS)


def settings_for(*providers, prefix="svclab-compare", **kw):
    return {p: Settings(cluster_name=compare.cluster_name(prefix, p), provider=p, **kw) for p in providers}


def record(name, provider, *, complete=True, workers=2):
    shape = {"workers": workers, "node_image": "", "kube_proxy_mode": "iptables", "network": "svclab",
             "provider": provider}
    return ClusterRecord(name, shape, complete=complete)


def test_nothing_exists_every_cluster_is_created_and_deleted_in_turn():
    steps = compare.plan(settings_for("metallb", "kube-vip", "none"), [], {}, keep=False)
    assert [(s.provider, s.cluster, s.reuse, s.delete_after) for s in steps] == [
        ("metallb", "svclab-compare-metallb", False, True),
        ("kube-vip", "svclab-compare-kube-vip", False, True),
        ("none", "svclab-compare-none", False, True)]


def test_a_cluster_svclab_made_with_the_provider_is_reused_and_left_up():
    settings = settings_for("metallb", "none")
    steps = compare.plan(settings, ["svclab-compare-none", "someone-else"],
                         {"svclab-compare-none": record("svclab-compare-none", "none")}, keep=False)
    assert [(s.reuse, s.delete_after) for s in steps] == [(False, True), (True, False)]
    assert "reuse cluster svclab-compare-none" in steps[1].describe()


def test_keep_keeps_what_it_creates():
    steps = compare.plan(settings_for("metallb", "none"), [], {}, keep=True)
    assert [s.delete_after for s in steps] == [False, False]
    assert steps[0].describe().endswith("keep it")


def test_a_record_whose_cluster_is_gone_means_create():
    name = "svclab-compare-metallb"
    steps = compare.plan(settings_for("metallb"), [], {name: record(name, "metallb")}, keep=False)
    assert not steps[0].reuse and steps[0].delete_after


@pytest.mark.parametrize("clusters, records, message", [
    (["svclab-compare-none"], {}, "exists but svclab did not create it"),
    (["svclab-compare-none"], {"svclab-compare-none": record("svclab-compare-none", "metallb")},
     "runs provider 'metallb', not 'none'"),
    (["svclab-compare-none"], {"svclab-compare-none": record("svclab-compare-none", "none", complete=False)},
     "half-made"),
    ([], {"svclab-compare-none": record("svclab-compare-none", "none", complete=False)}, "half-made"),
    (["svclab-compare-none"], {"svclab-compare-none": record("svclab-compare-none", "none", workers=4)},
     "exists with workers=4"),
])
def test_a_cluster_that_cannot_be_used_is_refused_before_anything_is_made(clusters, records, message):
    settings = settings_for("metallb", "none", workers=2)
    with pytest.raises(UsageError, match=message):
        compare.plan(settings, clusters, records, keep=False)


def test_a_prefix_that_makes_a_bad_cluster_name_is_refused():
    request = compare.CompareRequest(("metallb", "kube-vip"), LABS, Path("out"), prefix="a" * 32)
    with pytest.raises(UsageError, match="makes the invalid cluster name 'a{32}-kube-vip'"):
        request.settings()
    assert compare.CompareRequest(("kube-vip",), LABS, Path("out"), prefix="a" * 31).settings()


def test_the_default_results_folder_is_new_and_dated():
    assert compare.default_json_dir(0).name.startswith("svclab-compare-19")


def test_each_run_writes_the_lab_all_document_to_its_provider_file(tmp_path):
    flags = compare.CompareRequest(("none",), LABS, tmp_path / "out", prefix="cmp").flags("none")
    assert (flags.name, flags.provider, flags.json) == ("cmp-none", "none", str(tmp_path / "out" / "none.json"))
    assert flags.diagnostics == str(tmp_path / "out") and not flags.step


@pytest.fixture(autouse=True)
def no_svclab_settings(monkeypatch):
    """The plans here are about the flags and what exists: settings from the environment (CI
    exports SVCLAB_NODE_IMAGE for the test bed) would make the recorded clusters another shape."""
    for key in [k for k in os.environ if k.startswith("SVCLAB_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(Path(__file__).parent)   # no svclab.yaml from wherever the tests were started


@contextlib.contextmanager
def _no_lock(settings, task, ui, *, namespaces=()):
    yield None


class Stand:
    """session.run_labs and lifecycle.up/down stood in for, recording what happened in order."""

    def __init__(self, monkeypatch, existing=(), fail=None, interrupt=None):
        monkeypatch.setattr(compare, "cluster_held", _no_lock)   # the lock itself: test_lock.py
        self.events = []
        self.fail, self.interrupt = fail or {}, interrupt
        monkeypatch.setattr(compare.lifecycle, "preflight", lambda settings: (None, self))
        monkeypatch.setattr(compare.lifecycle, "down", self.down)
        monkeypatch.setattr(compare.session, "run_labs", self.run_labs)
        monkeypatch.setattr(compare.labs, "load_lab", lambda lab_id: None)
        self.existing = list(existing)
        monkeypatch.setattr(compare.ClusterRecord, "load", classmethod(
            lambda cls, directory: record(directory.name, directory.name.removeprefix("svclab-compare-"))
            if directory.name in self.existing else None))

    def clusters(self):
        return list(self.existing)

    def run_labs(self, lab_ids, flags):
        self.events.append(("labs", flags.name))
        if flags.provider == self.interrupt:
            raise KeyboardInterrupt
        passed = flags.provider not in self.fail
        Path(flags.json).write_text(json.dumps({"version": 1, "provider": flags.provider, "kube_proxy_mode": "iptables",
                                                "labs": list(lab_ids), "results": [
                                                    {"lab": "nodeport", "probe": "every-node", "claim": "C5",
                                                     "passed": passed, "facts": {}}]}))
        return LabRun([], 0 if passed else EXIT_MISMATCH, None)

    def down(self, settings, ui):
        self.events.append(("down", settings.cluster_name))
        return True


def run(tmp_path, providers=("metallb", "kube-vip", "none"), **kw):
    request = compare.CompareRequest(tuple(providers), LABS, tmp_path / "out", quiet=True, **kw)
    buf = io.StringIO()
    code = compare.compare_providers(request, Console(file=buf, width=80, color_system=None))
    return code, buf.getvalue()


def test_one_cluster_at_a_time_each_deleted_before_the_next_is_made(monkeypatch, tmp_path):
    stand = Stand(monkeypatch, existing=["svclab-compare-kube-vip"])
    code, text = run(tmp_path)
    assert code == EXIT_OK
    assert stand.events == [("labs", "svclab-compare-metallb"), ("down", "svclab-compare-metallb"),
                            ("labs", "svclab-compare-kube-vip"),          # reused: left as it was
                            ("labs", "svclab-compare-none"), ("down", "svclab-compare-none")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kube-vip.json", "metallb.json", "none.json"]
    assert "C5 every-node" in text and "metallb" in text and "report.compare --results" in " ".join(text.split())


def test_a_probe_that_differs_on_one_provider_ends_with_exit_1(monkeypatch, tmp_path):
    Stand(monkeypatch, fail={"kube-vip"})
    code, text = run(tmp_path)
    assert code == EXIT_MISMATCH and "DIFFERED" in text


def test_keep_deletes_nothing(monkeypatch, tmp_path):
    stand = Stand(monkeypatch)
    run(tmp_path, keep=True)
    assert [e for e in stand.events if e[0] == "down"] == []


def test_ctrl_c_deletes_the_cluster_it_made_and_makes_no_other(monkeypatch, tmp_path):
    stand = Stand(monkeypatch, interrupt="kube-vip")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert stand.events == [("labs", "svclab-compare-metallb"), ("down", "svclab-compare-metallb"),
                            ("labs", "svclab-compare-kube-vip"), ("down", "svclab-compare-kube-vip")]


def test_ctrl_c_on_a_reused_cluster_leaves_it(monkeypatch, tmp_path):
    stand = Stand(monkeypatch, existing=["svclab-compare-none"], interrupt="none")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, providers=("none",))
    assert stand.events == [("labs", "svclab-compare-none")]


def test_a_refused_plan_makes_no_cluster_and_no_folder(monkeypatch, tmp_path):
    stand = Stand(monkeypatch, existing=["svclab-compare-none"])
    monkeypatch.setattr(compare.ClusterRecord, "load", classmethod(lambda cls, directory: None))
    with pytest.raises(UsageError, match="did not create it"):
        run(tmp_path)
    assert stand.events == [] and not (tmp_path / "out").exists()


def svclab(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path)


@pytest.mark.parametrize("args, message", [
    ([], "no providers given"),
    (["--providers", "metallb,f5"], "unknown provider 'f5'"),
    (["--providers", "none,none"], "names 'none' twice"),
    (["--providers", "none", "--labs", "nodeport,nope"], "unknown lab 'nope'"),
    (["--providers", "none", "--name", "Bad"], "invalid cluster name"),
    (["--providers", "none", "--workers", "9"], "workers must be between 0 and 5"),
])
def test_bad_input_is_one_line_before_anything_is_made(args, message, tmp_path):
    proc = svclab("compare", *args, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == [], "no results folder, no state"


def test_every_flag_has_help():
    proc = subprocess.run([sys.executable, "-m", "svclab", "--help", "compare"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--providers", "--labs", "--json-dir", "--keep", "--name", "--workers", "--node-image"):
        assert flag in proc.stdout
