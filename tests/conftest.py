"""What every test run shares: at the end, the time each test file took (setup, calls and
teardown, module fixtures included), so a run's log shows where its minutes went."""

from __future__ import annotations

from collections import defaultdict

_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    _seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    terminalreporter.section("time per test file")
    unit = sum(s for path, s in _seconds.items() if path.startswith("tests/unit/"))
    if unit:
        terminalreporter.write_line(f"{unit:8.1f}s  tests/unit/ (all files)")
    for path, seconds in sorted(_seconds.items()):
        if not path.startswith("tests/unit/"):
            terminalreporter.write_line(f"{seconds:8.1f}s  {path}")
