"""`svclab doctor` on this machine with one prerequisite taken away at a time: Docker unreachable,
kind missing, kubectl missing, the node image absent. Each shows a fail row that names the problem
and its fix, no other fail row, and exits 3; untouched, the machine has no fail row at all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from svclab.errors import EXIT_PREREQUISITE

from .leaks import cli_env, kind_binary, svclab

pytestmark = pytest.mark.e2e


def rows(table: str) -> dict[str, dict[str, str]]:
    """{check: {status, detail, fix}} from the table doctor prints (wrapped cells joined)."""
    found: dict[str, dict[str, str]] = {}
    last = None
    for line in table.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if len(cells) != 4:
            continue
        check, status, detail, fix = cells
        if check:
            last = found[check] = {"status": status, "detail": detail, "fix": fix}
        elif last is not None:
            last["detail"] = f"{last['detail']} {detail}".strip()
            last["fix"] = f"{last['fix']} {fix}".strip()
    return found


def doctor(tmp_path: Path, **env: str):
    # A wide terminal keeps each row on one line; wrapped rows are joined all the same.
    run = svclab("doctor", env=cli_env(tmp_path / "state", COLUMNS="400", **env), cwd=tmp_path, timeout=120)
    return run, rows(run.stdout)


def only_failure(found: dict[str, dict[str, str]]) -> tuple[str, dict[str, str]]:
    failed = {check: row for check, row in found.items() if row["status"] == "fail"}
    assert len(failed) == 1, f"expected one fail row, got {failed}"
    return next(iter(failed.items()))


def _path_with(tmp_path: Path, *tools: str) -> str:
    folder = tmp_path / "path-bin"
    folder.mkdir()
    for tool in tools:
        own = Path(kind_binary()).parent / tool
        (folder / tool).symlink_to(own if own.exists() else shutil.which(tool))
    return str(folder)


def test_untouched_machine_has_no_failure(tmp_path):
    run, found = doctor(tmp_path)
    assert run.returncode == 0, str(run)
    assert {"docker", "kind", "kubectl"} <= set(found), str(run)
    assert not [c for c, r in found.items() if r["status"] == "fail"], str(run)
    if os.environ.get("SVCLAB_NODE_IMAGE"):
        assert found["node image"]["status"] == "ok", str(run)


def test_docker_unreachable(tmp_path):
    run, found = doctor(tmp_path, DOCKER_HOST="unix:///nonexistent.sock")
    assert run.returncode == EXIT_PREREQUISITE, str(run)
    check, row = only_failure(found)
    assert check == "docker", str(run)
    assert "Docker does not answer" in row["detail"] and "start Docker" in row["fix"]


def test_kind_missing(tmp_path):
    run, found = doctor(tmp_path, XDG_DATA_HOME=str(tmp_path / "data"), PATH=_path_with(tmp_path, "kubectl"))
    assert run.returncode == EXIT_PREREQUISITE, str(run)
    check, row = only_failure(found)
    assert check == "kind" and row["detail"] == "kind not found", str(run)
    assert "install kind" in row["fix"] and "testbed.build" in row["fix"]


def test_kubectl_missing(tmp_path):
    tools = tmp_path / "data" / "svclab" / "bin"
    tools.mkdir(parents=True)
    (tools / "kind").symlink_to(kind_binary())
    run, found = doctor(tmp_path, XDG_DATA_HOME=str(tmp_path / "data"), PATH=_path_with(tmp_path))
    assert run.returncode == EXIT_PREREQUISITE, str(run)
    check, row = only_failure(found)
    assert check == "kubectl" and row["detail"] == "kubectl not found", str(run)
    assert "install kubectl" in row["fix"]


def test_node_image_absent(tmp_path):
    run, found = doctor(tmp_path, SVCLAB_NODE_IMAGE="svclab.local/absent:v0")
    assert run.returncode == EXIT_PREREQUISITE, str(run)
    check, row = only_failure(found)
    assert check == "node image", str(run)
    assert "svclab.local/absent:v0" in row["detail"] and "not in local Docker" in row["detail"]
    assert "testbed.build" in row["fix"] and "SVCLAB_NODE_IMAGE" in row["fix"]
