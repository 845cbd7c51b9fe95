"""The per-cluster lock: one holder at a time, a bounded wait that says whom it waits for, and
the record a killed holder leaves for the next one (a real process, killed with SIGKILL)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from svclab import lock
from svclab.errors import SvclabError


def test_a_free_cluster_is_taken_at_once_and_left_empty(tmp_path):
    (tmp_path / "clusters" / "c1").mkdir(parents=True)
    with lock.holding(tmp_path, "c1", "lab.all", namespaces=["svclab-nodeport"]) as unfinished:
        assert unfinished is None
        record = json.loads(lock.lock_path(tmp_path, "c1").read_text())
        assert record["pid"] == os.getpid() and record["namespaces"] == ["svclab-nodeport"]
    assert not lock.lock_path(tmp_path, "c1").exists()


def test_a_second_command_waits_then_refuses_saying_whom_it_waited_for(tmp_path):
    now = [0.0]
    told = []
    with lock.holding(tmp_path, "c1", "lab.all"):
        with pytest.raises(SvclabError, match=rf"cluster c1 is busy: svclab \(pid {os.getpid()}\) runs lab.all"):
            with lock.holding(tmp_path, "c1", "cluster.down", wait=2, on_wait=told.append,
                              clock=lambda: now[0], pause=lambda s: now.__setitem__(0, now[0] + s)):
                pass
    assert len(told) == 1 and "waiting up to 2s" in told[0]
    assert now[0] >= 2
    # Once the first one is done, the cluster is free again.
    with lock.holding(tmp_path, "c1", "cluster.down") as unfinished:
        assert unfinished is None


def test_other_clusters_are_not_held_up(tmp_path):
    (tmp_path / "clusters" / "c1").mkdir(parents=True)
    with lock.holding(tmp_path, "c1", "lab.all"), lock.holding(tmp_path, "c2", "lab.all", wait=0) as unfinished:
        assert unfinished is None


def test_a_killed_holder_frees_the_cluster_and_leaves_what_it_was_doing(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from svclab import lock
        with lock.holding(Path({str(tmp_path)!r}), "c1", "lab.vip-shortcut", namespaces=["svclab-vip-shortcut"]):
            print("held", flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(SvclabError, match="runs lab.vip-shortcut"):
            with lock.holding(tmp_path, "c1", "lab.all", wait=0):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    with lock.holding(tmp_path, "c1", "lab.all", wait=5) as unfinished:
        assert unfinished is not None
        assert (unfinished.pid, unfinished.task, unfinished.namespaces) == (
            child.pid, "lab.vip-shortcut", ("svclab-vip-shortcut",))


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]"])
def test_an_empty_or_foreign_record_is_nothing_to_repair(text):
    assert lock.parse_record(text) is None


def test_a_command_that_made_nothing_leaves_no_folder(tmp_path):
    state = tmp_path / "state"
    with lock.holding(state, "new", "cluster.up"):
        assert lock.lock_path(state, "new").exists()
    assert not state.exists()
    # Once the cluster's folder exists, it stays; the lock file does not.
    with lock.holding(state, "new", "cluster.up"):
        (state / "clusters" / "new").mkdir()
    assert (state / "clusters" / "new").is_dir() and not lock.lock_path(state, "new").exists()


def test_the_lock_file_of_a_cluster_that_is_gone_goes_too(tmp_path):
    (tmp_path / "clusters" / "old").mkdir(parents=True)
    with lock.holding(tmp_path, "old", "cluster.down"):
        (tmp_path / "clusters" / "old").rmdir()   # what `down` does
    assert list((tmp_path / "clusters").iterdir()) == []


def test_a_waiter_whose_file_was_removed_takes_a_new_one(tmp_path):
    """The holder of an absent cluster's lock removes the file as it ends; a command that was
    waiting on that file must not then hold a lock on a file nobody else can open."""
    calls = []

    def pause(seconds):
        if not calls:   # the first holder ends while the second waits: its file is removed
            first.__exit__(None, None, None)
        calls.append(seconds)

    first = lock.holding(tmp_path, "gone", "cluster.down")
    first.__enter__()
    with lock.holding(tmp_path, "gone", "lab.all", wait=5, pause=pause):
        path = lock.lock_path(tmp_path, "gone")
        assert path.exists()
        with pytest.raises(SvclabError, match="is busy"):   # a third command sees the second one's lock
            with lock.holding(tmp_path, "gone", "cluster.up", wait=0):
                pass
    assert calls
