"""The GitHub Actions workflow and the composite action (action.yml) validate against their schemas
(offline, vendored schemas), the workflow runs the labs through the action for every provider, and
both files follow the hardening rules: remote actions pinned by commit, no credentials left in the
checkout, no expression inside a shell script, nothing zizmor rates medium or worse."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from svclab.config import DEFAULT_PROVIDER, PROVIDERS, pins

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "smoke.yml"
ACTION = ROOT / "action.yml"
FILES = [WORKFLOW, ACTION]

ACTION_INPUTS = {"labs", "provider", "node-image", "kind-version", "python-version", "results-name"}
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<value>.+?)\s*$")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def steps(path: Path) -> list[dict]:
    doc = load(path)
    if path == ACTION:
        return doc["runs"]["steps"]
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def run_scripts(path: Path) -> list[str]:
    return [step["run"] for step in steps(path) if "run" in step]


def check_schema(schema: str, path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_matches_the_schema():
    check_schema("vendor.github-workflows", WORKFLOW)


def test_action_matches_the_schema():
    check_schema("vendor.github-actions", ACTION)


def test_workflow_runs_every_provider_through_the_action():
    workflow = load(WORKFLOW)
    job = workflow["jobs"]["labs"]
    assert sorted(job["strategy"]["matrix"]["provider"]) == sorted(PROVIDERS)
    uses = [step.get("uses", "") for step in job["steps"]]
    assert uses[0].startswith("actions/checkout@"), "the checkout comes first: `uses: ./` needs the files"
    local = [step for step in job["steps"] if step.get("uses") == "./"]
    assert len(local) == 1, "the labs run through the repository's own action"
    assert local[0]["with"]["provider"] == "${{ matrix.provider }}"
    assert local[0]["with"].get("labs", "all") == "all"
    assert "${{ matrix.provider }}" in local[0]["with"]["results-name"], "one artifact name per matrix job"
    # The action runs svclab's own tasks: each lab, then the cluster's deletion whatever happened.
    scripts = {step.get("id", step["name"]): step for step in steps(ACTION) if "run" in step}
    assert '"$SVCLAB" "lab.$id" --provider "$PROVIDER"' in scripts["labs"]["run"]
    down = next(step for step in scripts.values() if "cluster.down" in step["run"])
    assert down["if"].startswith("always()")


def test_workflow_is_hardened():
    workflow = load(WORKFLOW)
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"] == {"group": "${{ github.workflow }}-${{ github.ref }}",
                                       "cancel-in-progress": True}
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"job {name} has no timeout-minutes"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_remote_actions_are_pinned_by_commit(path):
    lines = [m["value"] for m in map(USES_LINE.match, path.read_text().splitlines()) if m]
    assert len(lines) == sum(1 for step in steps(path) if "uses" in step), "one `uses:` per line, as a step key"
    remote = [value for value in lines if not value.startswith(("./", "docker://"))]
    assert remote, "expected remote actions to check"
    for value in remote:
        assert PINNED.match(value), f"{path.name}: `uses: {value}` is not `owner/repo@<40-hex sha> # vX.Y.Z`"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_checkout_keeps_no_credentials(path):
    for step in steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, step


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_expression_inside_a_shell_script(path):
    """Expressions are expanded into the script text before the shell reads it (script injection):
    inputs, matrix values and github.* reach scripts through `env:` only."""
    scripts = run_scripts(path)
    assert scripts or path == WORKFLOW
    for script in scripts:
        assert "${{" not in script, f"{path.name}: an expression inside `run:`:\n{script}"


def test_action_inputs_and_outputs():
    action = load(ACTION)
    inputs = action["inputs"]
    assert set(inputs) == ACTION_INPUTS
    assert inputs["labs"]["default"] == "all"
    assert inputs["provider"]["default"] == DEFAULT_PROVIDER
    assert inputs["node-image"]["default"] == ""
    assert inputs["python-version"]["default"] == "3.12"
    assert {"results", "passed", "exit-code", "diagnostics"} <= set(action["outputs"])
    # Every `inputs.<name>` the action refers to exists (a typo would silently expand to "").
    used = set(re.findall(r"\binputs\.([A-Za-z0-9_-]+)", ACTION.read_text()))
    assert used <= ACTION_INPUTS, used - ACTION_INPUTS
    assert used == ACTION_INPUTS, f"inputs never used: {ACTION_INPUTS - used}"


def test_action_kind_default_is_the_pinned_kind():
    assert load(ACTION)["inputs"]["kind-version"]["default"] == pins()["kind"]["version"]


def test_action_checks_the_providers_and_lab_ids():
    check = next(step for step in steps(ACTION) if step.get("id") == "check")
    known = re.search(r'^known_providers="([^"]*)"$', check["run"], re.M)
    assert known and tuple(known[1].split()) == PROVIDERS
    assert "[[ $id =~ ^[a-z0-9-]+$ ]]" in check["run"]
    labs = next(step for step in steps(ACTION) if step.get("id") == "labs")
    assert labs["env"]["LAB_IDS"] == "${{ steps.check.outputs.lab-ids }}", "the labs run the checked ids only"
    assert labs["env"]["NODE_IMAGE"] == "${{ inputs.node-image }}"
    assert 'if [[ -n $NODE_IMAGE ]]; then\n  export SVCLAB_NODE_IMAGE=$NODE_IMAGE' in labs["run"]


def zizmor() -> str:
    found = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    assert found, "zizmor is not installed: pip install -e '.[test]'"
    return found


def test_zizmor_reports_nothing_at_medium_or_above():
    proc = subprocess.run([zizmor(), "--offline", "--no-exit-codes", "--no-progress", "--color", "never",
                           "--format", "json", *map(str, FILES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)
    serious = [f for f in findings if f["determinations"]["severity"] in ("Medium", "High")]
    assert not serious, json.dumps(serious, indent=1)[:4000]


def test_action_keeps_results_always_and_diagnostics_on_failure():
    uploads = [step for step in steps(ACTION) if step.get("uses", "").startswith("actions/upload-artifact@")]
    by_path = {step["with"]["path"]: step for step in uploads}
    results = by_path["${{ steps.paths.outputs.results }}"]
    diagnostics = by_path["${{ steps.paths.outputs.diagnostics }}"]
    assert results["if"] == "always()"
    assert diagnostics["if"] == "always() && steps.labs.outcome == 'failure'"
    assert results["with"]["name"] != diagnostics["with"]["name"]
