"""The test-bed builder's lanes: side by side, and the first failure stops the rest."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "testbed"))
from builder import BuildError, Builder, process_tree  # noqa: E402


def quiet_builder(tmp_path):
    return Builder(cache=tmp_path / "cache", tools_dir=tmp_path / "bin", mirror_dir=tmp_path / "mirror",
                   log=lambda msg: None)


def test_lanes_run_side_by_side_and_return_in_order(tmp_path):
    b = quiet_builder(tmp_path)
    start = time.monotonic()
    results = b.in_lanes([lambda: b.run(["sh", "-c", "sleep 1; echo one"], capture=True),
                          lambda: b.run(["sh", "-c", "sleep 1; echo two"], capture=True)])
    assert results == ["one\n", "two\n"]
    assert time.monotonic() - start < 1.9  # one after another would take 2 s


def test_a_failing_lane_stops_the_others_and_its_error_is_raised(tmp_path):
    b = quiet_builder(tmp_path)
    marker = tmp_path / "still-running"

    def slow():
        # a child below the lane's own command, as go-binaries.sh starts go
        b.run(["sh", "-c", f"sh -c 'sleep 30; touch {marker}' & wait"])

    def failing():
        time.sleep(0.3)
        b.run(["sh", "-c", "echo broken >&2; exit 7"], capture=True)

    start = time.monotonic()
    with pytest.raises(BuildError, match=r"exited 7: broken"):
        b.in_lanes([slow, failing])
    assert time.monotonic() - start < 5
    assert not marker.exists()
    with pytest.raises(BuildError, match="stopped"):
        b.run(["true"])
    leftover = subprocess.run(["pgrep", "-f", f"touch {marker}"], capture_output=True)
    assert leftover.returncode == 1, leftover.stdout


def test_process_tree_lists_children_before_their_parent():
    parent = subprocess.Popen(["sh", "-c", "sleep 5 & sleep 5 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(process_tree(parent.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = process_tree(parent.pid)
        assert len(tree) == 3 and tree[-1] == parent.pid
    finally:
        for pid in process_tree(parent.pid):
            subprocess.run(["kill", str(pid)])
        parent.wait(timeout=5)
