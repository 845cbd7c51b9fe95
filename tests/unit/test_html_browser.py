"""The HTML report in a real browser: Debian's chromium (/usr/bin/chromium, installed by
scripts/test.sh), driven by Playwright, never a browser Playwright downloads. A browser that does
not start fails these tests: they are not skipped.

The page is opened from a file with every request routed through the test: none may go
anywhere but the file itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from svclab import html_report, labs

from ..chromium import ARGS, CHROMIUM, GREEN, RED
from .html_samples import ATTEMPTS, real_doc, synthetic_doc



@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs it (apt-get install chromium)")
    with sync_playwright() as p:
        try:
            launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        except Exception as e:  # noqa: BLE001 - whatever stops the browser fails the test, with its message
            pytest.fail(f"chromium did not start: {e}")
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    """The page of the real run and the synthetic one (with its topology, one probe that differs)."""
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html_report.render_page([real_doc(), synthetic_doc()], labs.load_claims()), encoding="utf-8")
    return path


@pytest.fixture
def opened(browser, report_file):
    """The report opened in a fresh page; the URLs of every request it made, the file's included."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    url = report_file.as_uri()

    def route(r):
        requested.append(r.request.url)
        if r.request.url == url:
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url, wait_until="load")
    yield page, requested
    context.close()


def test_the_report_opens_with_every_probe_drawn(opened):
    page, _ = opened
    assert page.title().startswith("svclab report")
    for run, doc in enumerate((real_doc(), synthetic_doc()), start=1):
        for r in doc["results"]:
            drawn = page.locator(f'svg [data-probe="{r["lab"]}/{r["probe"]}"][data-run="{run}"]')
            assert drawn.count() == 1, f'{r["lab"]}/{r["probe"]}'
            assert drawn.first.locator("circle.num").count() == 1


def test_a_red_verdict_is_red_and_a_green_one_green(opened):
    page, _ = opened
    failed = page.locator('svg [data-probe="loadbalancer/local-policy-keeps-client"][data-run="2"] polyline').first
    assert failed.evaluate("e => getComputedStyle(e).stroke") == RED
    held = page.locator('svg [data-probe="loadbalancer/port-80-at-external-address"][data-run="2"] polyline').first
    assert held.evaluate("e => getComputedStyle(e).stroke") == GREEN
    verdict = page.locator("#r2-loadbalancer-local-policy-keeps-client .verdict")
    assert verdict.inner_text().startswith("✗") and verdict.evaluate("e => getComputedStyle(e).color") == RED
    claim = page.locator("#claim-C17 td.not-held a").first
    assert claim.evaluate("e => getComputedStyle(e).color") == RED


def test_a_timeline_has_one_mark_per_recorded_attempt(opened):
    page, _ = opened
    failover = page.locator('[data-timeline="failover/holder-fails"]').last   # the synthetic run's
    assert failover.locator("circle.mark").count() == len(ATTEMPTS)
    assert failover.locator("circle.mark.failed").count() == sum(not a["answered"] for a in ATTEMPTS)
    assert failover.locator("circle.mark.failed").first.evaluate("e => getComputedStyle(e).fill") == RED
    rr = next(r for r in real_doc()["results"] if r["lab"] == "dns-round-robin" and r["probe"] == "node-cut-off")
    marks = page.locator('[data-timeline="dns-round-robin/node-cut-off"] circle.mark')
    assert marks.count() == len(rr["facts"]["attempts"])


def test_evidence_is_one_click_away(opened):
    page, _ = opened
    item = page.locator("#r1-failover-holder-fails")
    evidence = item.locator("ul.evidence")
    assert not evidence.is_visible()
    item.locator("summary").first.click()
    assert evidence.is_visible() and "froze it" in evidence.inner_text()


def test_a_screenshot_of_the_whole_page(opened, tmp_path):
    page, _ = opened
    shot = tmp_path / "svclab-report.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 50_000
    narrow = tmp_path / "svclab-report-narrow.png"
    page.set_viewport_size({"width": 420, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 420   # the page itself does not scroll sideways
    page.screenshot(path=str(narrow))
    print(f"screenshot (narrow window): {narrow}")


def test_the_page_asks_the_network_for_nothing(opened, report_file):
    page, requested = opened
    page.wait_for_timeout(500)
    assert requested and set(requested) == {report_file.as_uri()}, json.dumps(requested)
    assert not [u for u in requested if u.startswith(("http:", "https:"))]


def test_print_shows_the_evidence_without_a_click(opened):
    page, _ = opened
    page.emulate_media(media="print")
    assert page.locator("#r1-failover-holder-fails ul.evidence").is_visible()


def test_following_a_link_to_a_probe_brings_its_path_forward(opened, report_file):
    page, _ = opened
    page.goto(report_file.as_uri() + "#r2-loadbalancer-local-policy-keeps-client")
    lab = '[data-run="2"][data-probe="loadbalancer/'
    assert page.locator(lab + 'local-policy-keeps-client"]').evaluate("e => getComputedStyle(e).opacity") == "1"
    assert page.locator(lab + 'port-80-at-external-address"]').evaluate("e => getComputedStyle(e).opacity") == "0.15"
