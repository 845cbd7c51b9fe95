"""The GitHub Actions workflow validates against the workflow schema (offline, vendored schema)
and runs the labs with svclab's own script for every provider."""

import subprocess
import sys
from pathlib import Path

import yaml

from svclab.config import PROVIDERS

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "smoke.yml"


def test_workflow_matches_the_schema():
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_runs_every_provider_with_svclab_tasks():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["labs"]
    assert sorted(job["strategy"]["matrix"]["provider"]) == sorted(PROVIDERS)
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "./scripts/run.sh lab.all --provider ${{ matrix.provider }}" in runs
    assert "cluster.down" in runs
