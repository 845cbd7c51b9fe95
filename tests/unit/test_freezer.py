"""Thawing what is frozen inside a node container, on a fake cgroup tree."""

from __future__ import annotations

from svclab import freezer

NODE = "06cda9316db8" + "0" * 52
OTHER = "f" * 64


def _cgroup(root, relative: str, name: str, value: str):
    folder = root / relative
    folder.mkdir(parents=True)
    (folder / name).write_text(value + "\n")
    return folder / name


def test_thaws_only_frozen_cgroups_inside_the_node(tmp_path):
    pod = _cgroup(tmp_path, f"freezer/docker/{NODE}/kubelet.slice/pod1/cri-containerd-1.scope", "freezer.state", "FROZEN")
    running = _cgroup(tmp_path, f"freezer/docker/{NODE}/kubelet.slice/pod1/cri-containerd-2.scope", "freezer.state",
                      "THAWED")
    elsewhere = _cgroup(tmp_path, f"freezer/docker/{OTHER}/x.scope", "freezer.state", "FROZEN")
    assert freezer.frozen_below(NODE, tmp_path) == [pod]
    assert freezer.thaw(NODE, tmp_path) == 1
    assert pod.read_text() == "THAWED"
    assert running.read_text().strip() == "THAWED"
    assert elsewhere.read_text().strip() == "FROZEN"
    assert freezer.thaw(NODE, tmp_path) == 0


def test_a_freeze_still_in_progress_is_thawed_too(tmp_path):
    freezing = _cgroup(tmp_path, f"freezer/docker/{NODE}/kubelet.slice/pod1/cri-containerd-3.scope", "freezer.state",
                       "FREEZING")
    assert freezer.thaw(NODE, tmp_path) == 1
    assert freezing.read_text() == "THAWED"


def test_cgroup_v2_freeze_files_are_cleared(tmp_path):
    frozen = _cgroup(tmp_path, f"system.slice/docker-{NODE}.scope/kubelet.slice/a", "cgroup.freeze", "1")
    assert freezer.thaw(NODE, tmp_path) == 1
    assert frozen.read_text() == "0"


def test_nothing_to_do_without_the_container_cgroup(tmp_path):
    assert freezer.frozen_below(NODE, tmp_path) == []
    assert freezer.thaw(NODE, tmp_path) == 0
