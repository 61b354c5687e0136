"""Take the README's dashboard screenshots with Debian's headless Chromium (Playwright).

Runs the demo's first three acts quietly in a temporary folder — v1.1.0 promoted,
v1.2.0 rolled back by the analysis — then photographs the service page (the
rollback, its verdict with confidence intervals, the charts), a release page and the
rolled-back rollout's own page (its steps, verdict in words, charts and decisions).

    .venv/bin/python scripts/screenshot.py   # writes docs/dashboard.png, release.png, rollout.png
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from rich.console import Console

from airlock.demo import Demo, DemoOptions, scenario

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
                page.goto(f"{server.url}/rollouts")
                page.click("#rollout-list tbody tr:first-child a")  # the newest: rolled back
                page.wait_for_selector("#rollout-charts")
                page.screenshot(path=str(DOCS / "rollout.png"), full_page=True)
                browser.close()
        finally:
            demo.traffic.stop()
            server.stop()
            demo.ws.close()
    print(f"wrote dashboard.png, release.png and rollout.png in {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
