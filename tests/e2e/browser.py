"""The HTML report of a real run, checked in Debian's chromium (driven by Playwright; see
tests/unit/test_html_browser.py for the page's behaviours on recorded and synthetic runs)."""

from __future__ import annotations

from pathlib import Path

from ..chromium import ARGS, CHROMIUM, GREEN


def check_report(page_file: Path, data: dict, screenshot: Path) -> list[str]:
    """Opens PAGE_FILE (the --html page of the run whose JSON is DATA) with every request routed
    through here: each probe's path is drawn once and green (the run passed), each timeline has
    one mark per recorded attempt, nothing but the file itself is requested. Saves a full-page
    SCREENSHOT; returns what was requested."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: scripts/test.sh installs it"
    url, requested = page_file.as_uri(), []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})

            def route(r):
                requested.append(r.request.url)
                (r.continue_ if r.request.url == url else r.abort)()

            context.route("**/*", route)
            page = context.new_page()
            page.goto(url, wait_until="load")
            for r in data["results"]:
                drawn = page.locator(f'svg [data-probe="{r["lab"]}/{r["probe"]}"][data-run="1"]')
                assert drawn.count() == 1, f'{r["lab"]}/{r["probe"]} is not drawn once'
                lines = drawn.first.locator("polyline")
                if r["passed"] and lines.count():
                    assert lines.first.evaluate("e => getComputedStyle(e).stroke") == GREEN, r["probe"]
                attempts = (r.get("facts") or {}).get("attempts")
                timeline = page.locator(f'[data-timeline="{r["lab"]}/{r["probe"]}"] circle.mark')
                if attempts and timeline.count():
                    assert timeline.count() == len(attempts), f'{r["probe"]}: {timeline.count()} marks'
            # A full page of every lab is a tall picture: on 2 busy cores (three workers, their
            # clusters) Chromium took longer than Playwright's default 30 s to paint it.
            page.screenshot(path=str(screenshot), full_page=True, timeout=180_000)
        finally:
            browser.close()
    assert set(requested) == {url}, requested
    return requested
