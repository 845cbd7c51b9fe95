"""Static checks over the whole tree: no undefined or unused names, no broken imports (pyflakes).
Such a slip otherwise shows only when that code path runs, e.g. one provider's e2e test."""

from __future__ import annotations

from pathlib import Path

from pyflakes.api import checkPath
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parents[2]


class _Collect(Reporter):
    def __init__(self):
        self.messages: list[str] = []

    def unexpectedError(self, filename, msg):
        self.messages.append(f"{filename}: {msg}")

    def syntaxError(self, filename, msg, lineno, offset, text):
        self.messages.append(f"{filename}:{lineno}: {msg}")

    def flake(self, message):
        self.messages.append(str(message))


def test_pyflakes_finds_nothing():
    files = [ROOT / "tasks.py", *sorted(p for part in ("svclab", "scripts", "tests")
                                        for p in (ROOT / part).rglob("*.py"))]
    assert len(files) > 40
    reporter = _Collect()
    for path in files:
        checkPath(str(path), reporter)
    assert not reporter.messages, "\n".join(reporter.messages)
