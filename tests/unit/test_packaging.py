"""The wheel and the sdist carry every file svclab reads at run time, and a wheel installed into a
fresh virtual environment works away from the checkout: `lab.list`, `--help lab.nodeport` and
`report.claims` answer from the files installed in site-packages.

Both are built with `python -m build` (the sdist first, then the wheel from the sdist) from a copy
of the files git knows about, committed or not yet, as they are in the working tree."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from svclab import report
from svclab.labs import Result

from ..dist import ROOT, build_dists, tree_files

TIMEOUT = 900


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def tree() -> list[str]:
    if shutil.which("git") is None:
        pytest.fail("git is needed to choose the files to package")
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"], capture_output=True).returncode:
        pytest.skip("not a git checkout: the files to package are the ones git knows about")
    return tree_files()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("packaging")
    assert not path.resolve().is_relative_to(ROOT)
    return path


@pytest.fixture(scope="module")
def dists(work, tree) -> dict[str, Path]:
    if importlib.util.find_spec("build") is None:
        pytest.fail("the `build` package is missing: pip install -e '.[test]'")
    return build_dists(work, tree)


@pytest.fixture(scope="module")
def venv(work, dists) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed (pip's cache reused)."""
    path = work / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", path)
    _run(sys.executable, "-m", "pip", "--python", path / "bin" / "python", "install", "-q",
         "--disable-pip-version-check", dists["wheel"])
    return path


def _svclab(venv: Path, work: Path, *args) -> subprocess.CompletedProcess:
    """The installed `svclab` command, run from a folder outside the checkout with a bare environment."""
    home = work / "home"
    cwd = work / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
           "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"), "COLUMNS": "200",
           "LANG": "C.UTF-8"}
    proc = subprocess.run([str(venv / "bin" / "svclab"), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _lab_ids(tree: list[str]) -> list[str]:
    return sorted(name.split("/")[1] for name in tree
                  if name.startswith("labs/") and name.endswith("/lab.yaml") and name.count("/") == 2)


def _packaged(tree: list[str]) -> list[str]:
    """Every file svclab reads at run time: the labs (with claims.yaml), its manifests, its pins,
    the HTML report's template."""
    return [n for n in tree if n.startswith(("labs/", "manifests/", "svclab/templates/"))] + ["svclab/pins.toml"]


def test_tree_has_labs_and_manifests(tree):
    assert len(_lab_ids(tree)) >= 5 and "labs/claims.yaml" in tree
    assert any(n.startswith("manifests/") and n.endswith(".yaml") for n in tree)


def test_wheel_holds_every_file_svclab_reads(dists, tree):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    in_package = [n for n in names if n.startswith("svclab/")]
    missing = []
    for name in _packaged(tree):
        # labs/ and manifests/ sit inside the package; the relative path below them is kept.
        if not any(n == name or (n.endswith("/" + name)) for n in in_package):
            missing.append(name)
    assert not missing, f"not in {dists['wheel'].name}: {missing}"
    for lab_id in _lab_ids(tree):
        assert any(n.endswith(f"/labs/{lab_id}/lab.yaml") for n in in_package), lab_id
    assert any(n.endswith("/labs/claims.yaml") for n in in_package)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_sdist_holds_labs_manifests_licence_readme_and_nothing_else(dists, tree):
    with tarfile.open(dists["sdist"]) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name]
    for name in [*_packaged(tree), "LICENSE", "README.md", "pyproject.toml"]:
        assert name in names, f"{name} not in {dists['sdist'].name}"
    for name in names:
        parts = name.split("/")
        assert not {".venv", "__pycache__", ".pytest_cache", "build", "dist", ".git"} & set(parts), name
        assert not name.endswith((".pyc", ".whl")), name


def test_installed_lab_list_shows_every_lab_and_its_claims(venv, work, tree):
    proc = _svclab(venv, work, "lab.list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert sorted(rows) == _lab_ids(tree), proc.stdout
    for lab_id in _lab_ids(tree):
        lab = yaml.safe_load((ROOT / "labs" / lab_id / "lab.yaml").read_text())
        assert lab["title"] in rows[lab_id]
        assert rows[lab_id].split()[1:1 + len(lab["claims"])] == lab["claims"], rows[lab_id]


def test_installed_help_for_a_lab_shows_its_flags(venv, work):
    proc = _svclab(venv, work, "--help", "lab.nodeport")
    assert proc.returncode == 0, proc.stderr
    title = yaml.safe_load((ROOT / "labs" / "nodeport" / "lab.yaml").read_text())["title"]
    assert "lab.nodeport" in proc.stdout and title in proc.stdout
    for flag in ("--provider", "--workers", "--json", "--junit", "--step"):
        assert flag in proc.stdout, proc.stdout


def test_installed_report_claims_marks_claims_from_a_results_file(venv, work, tree):
    def result(probe, claim, passed, observed):
        return Result(lab="nodeport", probe=probe, claim=claim, path=probe, expected="answers",
                      observed=observed, evidence=[f"outside → svclab-worker: {observed}"], passed=passed,
                      problems=[] if passed else ["the second Service was admitted"], seconds=0.4)

    results = [result("every-node", "C5", True, "3/3 answered"),
               result("duplicate-rejected", "C8", False, "admitted")]
    saved = work / "metallb.json"
    saved.write_text(report.to_json(results, context={"cluster": "svclab", "provider": "metallb"}))
    assert json.loads(saved.read_text())["results"][0]["claim"] == "C5"

    proc = _svclab(venv, work, "report.claims", "--results", saved)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| C")}
    claims = yaml.safe_load((ROOT / "labs" / "claims.yaml").read_text())
    assert list(rows) == list(claims), proc.stdout
    assert "| held |" in rows["C5"] and "metallb: 3/3 answered" in rows["C5"]
    assert "**not held**" in rows["C8"] and "metallb: admitted" in rows["C8"]
    assert "not shown" in rows["C1"]


def test_installed_report_html_writes_the_page_from_its_template(venv, work):
    saved = work / "for-html.json"
    result = Result(lab="nodeport", probe="every-node", claim="C5", path="outside → every node", expected="answers",
                    observed="1/1 answered", evidence=["outside → svclab-worker 172.18.0.3:30080: 1/1 answered"],
                    passed=True, problems=[], seconds=0.1)
    saved.write_text(report.to_json([result], context={"cluster": "svclab", "provider": "metallb"}))
    page = work / "report.html"
    proc = _svclab(venv, work, "report.html", "--results", saved, "--output", page)
    assert proc.returncode == 0, proc.stderr
    assert 'data-probe="nodeport/every-node"' in page.read_text()


def test_installed_copy_reads_its_files_from_site_packages(venv, work):
    site = _run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                cwd=work).stdout.strip()
    code = ("from svclab import resources\n"
            "for f in (resources.labs_dir(), resources.manifests_dir(), resources.claims_file(), resources.pins_file()):\n"
            "    print(f)\n")
    printed = _run(venv / "bin" / "python", "-c", code, cwd=work, env={"PATH": "/usr/bin:/bin"}).stdout.split()
    assert len(printed) == 4
    for path in printed:
        assert Path(path).resolve().is_relative_to(Path(site).resolve()), (path, site)
        assert not Path(path).resolve().is_relative_to(ROOT)
    # What lab.list shows is the installed copy's lab.yaml.
    installed = Path(printed[0]) / "nodeport" / "lab.yaml"
    text = installed.read_text()
    data = yaml.safe_load(text)
    installed.write_text(yaml.safe_dump({**data, "title": "installed copy: " + data["title"]}, sort_keys=False))
    try:
        proc = _svclab(venv, work, "lab.list")
        assert "installed copy:" in proc.stdout, proc.stdout
    finally:
        installed.write_text(text)
