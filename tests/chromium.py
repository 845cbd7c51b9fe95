"""How the tests start Debian's chromium (installed by scripts/browser.sh) through Playwright:
never a browser Playwright downloads. Without the background-networking flags Chromium reaches
for Google's hosts on start, which this machine's network refuses."""

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RED, GREEN = "rgb(207, 34, 46)", "rgb(26, 127, 55)"   # the report's verdict colours, as computed
