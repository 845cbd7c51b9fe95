"""What every test run shares: how the tests are shared out among pytest-xdist's workers
(`scripts/test.sh` runs them with `-n`), and at the end the time each test file took (setup, calls
and teardown, module fixtures included), so a run's log shows where its minutes went."""

from __future__ import annotations

from collections import defaultdict

import pytest

# The files whose tests take longest, first (seconds measured in a serial run), so that each
# worker starts on a long one and the short ones fill the gaps at the end.
LONGEST_FIRST = ("shared-cluster", "tests/e2e/test_cycles.py", "tests/e2e/test_your_cluster.py",
                 "tests/e2e/test_faults.py", "tests/e2e/test_bad_input.py", "unit",
                 "tests/e2e/test_installed_user.py")


def _group(item) -> str:
    """The worker-sharing unit of ITEM: every test that uses the session's MetalLB cluster
    (tests/e2e/conftest.py's `cluster`, directly or through another fixture) runs on one worker,
    so that it is built once and never twice under one name; all unit tests run together; any
    other e2e file keeps its module fixtures (its own clusters) on one worker."""
    path = item.nodeid.split("::")[0]
    if path.startswith("tests/unit/"):
        return "unit"
    defs = getattr(item, "_fixtureinfo", None) and item._fixtureinfo.name2fixturedefs.get("cluster")
    if defs and defs[-1].func.__module__ == "tests.e2e.conftest":
        return "shared-cluster"
    return path


def _shared_out(config) -> bool:
    return bool(getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"))


def pytest_itemcollected(item):
    """Under xdist (`-n`), marks each test with its group: --dist loadgroup keeps a group on one
    worker. (Here, not in pytest_collection_modifyitems: xdist reads the marks in its own.)"""
    if _shared_out(item.config):
        item.add_marker(pytest.mark.xdist_group(_group(item)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """Grouping shows in the ids a worker collected (`...::test@group`): without it two workers
    would build the shared cluster under one name. Refuse rather than run so."""
    if node.config.getvalue("dist") == "loadgroup" and ids and not any("@" in i.rpartition("::")[2] for i in ids):
        raise pytest.UsageError("pytest-xdist did not group the tests (see the pytest pin in pyproject.toml): "
                                "run with SVCLAB_TEST_WORKERS=0, or use a pytest that xdist's loadgroup supports")


def pytest_collection_modifyitems(config, items):
    """Under xdist, puts the longest groups first."""
    if not _shared_out(config):
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))   # stable: file order kept within a group

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
