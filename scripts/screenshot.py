"""Screenshot a ttscale view page in headless Chromium (how docs/view_*.png were made).

    python scripts/screenshot.py PAGE.html OUT.png [--click SELECTOR]... [--hover SELECTOR] [--width 1300 --height 900]

Waits until the viewer has drawn, performs the clicks then the hover, and writes the PNG. Needs Playwright (the dev
extra) and Chromium (scripts/browser.sh; or TTSCALE_CHROMIUM=/path).
"""

import argparse
import os
import sys

from engine.errors import TTScaleError
from engine.view.browser import CHROMIUM_ARGS, require_browser


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("page")
    p.add_argument("out")
    p.add_argument("--click", action="append", default=[], metavar="SELECTOR")
    p.add_argument("--hover", metavar="SELECTOR")
    p.add_argument("--width", type=int, default=1300)
    p.add_argument("--height", type=int, default=900)
    a = p.parse_args()
    try:
        sync_playwright, chromium = require_browser("scripts/screenshot.py")
    except TTScaleError as exc:
        sys.exit(f"screenshot: {exc}")
    if not os.path.exists(a.page):
        sys.exit(f"screenshot: {a.page}: no such file; write it with ttscale view first")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": a.width, "height": a.height})
        page.goto("file://" + os.path.abspath(a.page))
        page.wait_for_function("window.ttscaleView && window.ttscaleView.ready", timeout=60_000)
        for sel in a.click:
            page.click(sel)
        if a.hover:
            page.hover(a.hover)
        page.wait_for_timeout(200)
        page.screenshot(path=a.out)
        ms = page.evaluate("window.ttscaleView.renderMs")
        browser.close()
    print(f"screenshot: {a.out} ({ms:.0f} ms to draw)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
