"""Take the README's dashboard screenshots with Debian's headless Chromium (Playwright).

Runs the demo's first three acts quietly in a temporary folder — v1.1.0 promoted,
v1.2.0 rolled back by the analysis — then photographs the service page (the
rollback, its verdict with confidence intervals, the charts) and a release page.

    .venv/bin/python scripts/screenshot.py            # writes docs/dashboard.png, docs/release.png
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from rich.console import Console

from airlock import scenario
from airlock.demo import Demo, DemoOptions

DOCS = Path(__file__).resolve().parents[1] / "docs"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="airlock-shot-") as tmp:
        options = DemoOptions(folder=Path(tmp) / "demo", fast=True, serve=False, port=0)
        demo = Demo(options, Console(file=io.StringIO()))
        demo.setup_people()
        demo.build()
        demo.gate()
        server = demo.ship()
        try:
            time.sleep(4)  # a few more points for the charts
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                page.goto(f"{server.url}/login?next=/services/{scenario.SERVICE}")
                page.fill("#token", demo.secrets["olga"])
                page.click("button[type=submit]")
                page.wait_for_selector("#verdict-body .badge")
                page.wait_for_timeout(2500)
                page.screenshot(path=str(DOCS / "dashboard.png"), full_page=True)
                page.goto(f"{server.url}/releases/lumen@1.1.0")
                page.screenshot(path=str(DOCS / "release.png"), full_page=True)
                browser.close()
        finally:
            demo.traffic.stop()
            server.stop()
            demo.ws.close()
    print(f"wrote {DOCS / 'dashboard.png'} and {DOCS / 'release.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
