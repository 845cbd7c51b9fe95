"""`svclab lab.check PATH...` and `--labs DIR`, as the real command line: instructors' lab folders
are checked without a cluster, run beside the built-in ones, and a broken one breaks only itself."""

import json
import subprocess
import sys
from pathlib import Path

from svclab.errors import EXIT_OK, EXIT_USAGE
from svclab.program import spread_paths

ROOT = Path(__file__).resolve().parents[2]
GOOD = """# yaml-language-server: $schema=../lab.schema.json
title: "Mine: a ClusterIP in my own words"
claims: [C1, C90]
manifests: [echo-spread.yaml]
deployments: [echo]
probes:
  - id: default-type
    claim: C90
    kind: service
    service: echo
    field: spec.type
    expect: {equals: ClusterIP}
"""


def svclab(*args, env=None, cwd=None):
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd or "/tmp")}
    return subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})}, cwd=cwd)


def instructor_labs(tmp_path: Path) -> Path:
    root = tmp_path / "mylabs"
    (root / "mine").mkdir(parents=True)
    (root / "mine" / "lab.yaml").write_text(GOOD)
    (root / "typo").mkdir()
    (root / "typo" / "lab.yaml").write_text(GOOD.replace("deployments:", "deploymnets:"))
    (root / "claims.yaml").write_text("C90: A Service without a type is a ClusterIP, said my way.\n")
    return root


def test_many_paths_after_lab_check():
    assert spread_paths(["svclab", "lab.check", "a", "b"]) == ["svclab", "lab.check", "--path", "a", "--path", "b"]
    assert spread_paths(["svclab", "lab.check", "--path", "a"]) == ["svclab", "lab.check", "--path", "a"]
    assert spread_paths(["svclab", "lab.nodeport", "-n", "x"]) == ["svclab", "lab.nodeport", "-n", "x"]


def test_check_the_built_in_labs(tmp_path):
    proc = svclab("lab.check", str(ROOT / "labs"), str(ROOT / "labs" / "nodeport"), cwd=tmp_path)
    assert proc.returncode == EXIT_OK, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(list((ROOT / "labs").glob("*/lab.yaml"))) + 1
    assert all(line.startswith("ok  ") for line in lines)


def test_check_names_each_broken_lab_in_one_line(tmp_path):
    root = instructor_labs(tmp_path)
    proc = svclab("lab.check", str(root), cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE
    assert proc.stdout.splitlines() == [
        f"ok  {root}/mine",
        f"{root}/typo/lab.yaml: unknown key 'deploymnets' (did you mean 'deployments'?)"]
    assert "Traceback" not in proc.stderr


def test_check_without_a_lab_folder(tmp_path):
    proc = svclab("lab.check", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE and "not a lab folder" in proc.stdout
    proc = svclab("lab.check", cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE and "no lab folder given" in proc.stderr


def test_instructor_labs_become_tasks_and_a_broken_one_breaks_only_itself(tmp_path):
    root = instructor_labs(tmp_path)
    for how in ({"args": ("--labs", str(root))}, {"env": {"SVCLAB_LABS": str(root)}}):
        args, env = how.get("args", ()), how.get("env")
        listed = svclab(*args, "lab.list", "--json", env=env, cwd=tmp_path)
        assert listed.returncode == EXIT_OK, listed.stderr
        by_id = {lab["id"]: lab for lab in json.loads(listed.stdout)}
        assert by_id["mine"]["claims"] == ["C1", "C90"] and "nodeport" in by_id
        assert "unknown key 'deploymnets'" in by_id["typo"]["error"]
        broken = svclab(*args, "lab.typo", env=env, cwd=tmp_path)
        assert broken.returncode == EXIT_USAGE
        assert broken.stderr.strip() == f"error: {root}/typo/lab.yaml: unknown key 'deploymnets' (did you mean 'deployments'?)"
        helped = svclab(*args, "--help", "lab.mine", env=env, cwd=tmp_path)
        assert helped.returncode == EXIT_OK and "--provider" in helped.stdout


def test_a_labs_folder_that_is_not_there(tmp_path):
    env = {"SVCLAB_LABS": str(tmp_path / "nope")}
    proc = svclab("lab.nodeport", env=env, cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE and "SVCLAB_LABS" in proc.stderr and "is not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert svclab("lab.check", str(ROOT / "labs" / "nodeport"), env=env, cwd=tmp_path).returncode == EXIT_OK


def test_the_printed_schema_is_the_shipped_one(tmp_path):
    proc = svclab("lab.schema", cwd=tmp_path)
    assert proc.returncode == EXIT_OK
    assert proc.stdout == (ROOT / "labs" / "lab.schema.json").read_text()
