"""Security properties checked on the source itself: no shell anywhere in svclab, and every pinned
upstream file has its digest beside its URL. (File modes, ~/.kube/config and verbose output are
checked on a real cluster in tests/e2e/test_cycles.py.)"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "svclab"
SOURCES = sorted(PACKAGE.rglob("*.py"))
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}
PROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def shell_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every place SOURCE runs a shell: shell=<anything but False>, os.system and its kind (also
    imported by name), or a process started from one command string."""
    tree = ast.parse(source, filename)
    found = []
    imported = {alias.asname or alias.name: (node.module, alias.name)
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{where}: shell={ast.unparse(kw.value)}")
        name = _dotted(node.func)
        if name[-2:] in SHELL_CALLS or (len(name) == 1 and imported.get(name[0]) in SHELL_CALLS):
            found.append(f"{where}: {'.'.join(name)}()")
        first = node.args[0] if node.args else None
        one_string = isinstance(first, ast.JoinedStr) or (isinstance(first, ast.Constant) and isinstance(first.value, str))
        if name and name[-1] in PROCESS_CALLS and name[:-1] in ((), ("subprocess",)) and one_string:
            found.append(f"{where}: {'.'.join(name)}() of one command string")
    return found


def test_the_package_has_sources():
    assert len(SOURCES) >= 15 and PACKAGE / "run.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_shell(path):
    assert shell_uses(path.read_text(), str(path.relative_to(PACKAGE))) == []


@pytest.mark.parametrize("snippet", [
    "import subprocess\nsubprocess.run('ls', shell=True)",
    "import subprocess\nsubprocess.Popen(['ls'], shell=flag)",
    "import os\nos.system('ls')",
    "from os import system\nsystem('ls')",
    "import os\nos.popen('ls')",
    "import subprocess\nsubprocess.check_output(f'kind get {x}')",
    "from subprocess import getoutput\ngetoutput('ls')",
])
def test_shell_uses_are_found(snippet):
    assert shell_uses(snippet), snippet


def test_argument_lists_pass():
    assert shell_uses("import subprocess\nsubprocess.run(['kind', 'get', 'clusters'], shell=False)\n"
                      "run([binary, *args])") == []


# ------------------------------------------------------------------ pinned files

def urls_without_digest(pins: dict, where: str = "") -> list[str]:
    """Each URL of a file (key `url` or `*_url`) needs a sha256 of 64 hex digits beside it
    (`sha256` or `*_sha256`); other http(s) values may only be package archive bases (`*_mirror`),
    whose files the package manager checks against the archive's signed index."""
    problems = []
    for key, value in pins.items():
        here = f"{where}.{key}" if where else key
        if isinstance(value, dict):
            problems += urls_without_digest(value, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    problems += urls_without_digest(item, f"{here}[{i}]")
                elif isinstance(item, str) and re.match(r"https?://", item):
                    problems.append(f"{here}[{i}]: a URL in a list has no digest beside it")
        elif isinstance(value, str) and re.match(r"https?://", value):
            if key == "url" or key.endswith("_url"):
                digest = pins.get(key[: -len("url")] + "sha256")
                if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                    problems.append(f"{here}: no sha256 beside it")
            elif not key.endswith("_mirror"):
                problems.append(f"{here}: a URL that is neither a pinned file nor a package mirror")
    return problems


def test_every_pinned_url_has_a_sha256():
    pins = tomllib.loads((PACKAGE / "pins.toml").read_text())
    assert urls_without_digest(pins) == []
    files = [v for v in _walk(pins) if isinstance(v, str) and v.startswith("https://")]
    assert len(files) >= 3, "pins.toml should pin the MetalLB, kube-vip and Gateway API files"


def _walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
    else:
        yield value


@pytest.mark.parametrize("pins, problem", [
    ({"a": {"manifest_url": "https://x/y.yaml"}}, "a.manifest_url: no sha256"),
    ({"a": {"url": "https://x/y.yaml", "sha256": "abc"}}, "a.url: no sha256"),
    ({"a": {"files": [{"url": "https://x/y.yaml"}]}}, "a.files[0].url: no sha256"),
    ({"a": {"homepage": "https://x/"}}, "a.homepage: a URL that is neither"),
    ({"a": {"urls": ["https://x/y.yaml"]}}, "a.urls[0]: a URL in a list"),
])
def test_missing_digests_are_found(pins, problem):
    found = urls_without_digest(pins)
    assert len(found) == 1 and found[0].startswith(problem), found
