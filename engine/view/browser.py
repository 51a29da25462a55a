"""Where the headless Chromium that shows, tests and measures the viewer's pages is, and how it is started.

``chromium_path()`` is ``TTSCALE_CHROMIUM``, else ``chromium`` on ``PATH`` (Debian's package, which
``scripts/browser.sh`` installs), else None; ``require_browser`` also wants Playwright. ``CHROMIUM_ARGS``: as root in a container Chromium needs
``--no-sandbox``; on a machine without network the background-networking flags keep it from trying to reach out.
"""

from __future__ import annotations

import os
import shutil

from engine.errors import TTScaleError

CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic")


def chromium_path() -> str | None:
    """The Chromium binary to drive: ``TTSCALE_CHROMIUM``, else ``chromium`` on PATH, else ``/usr/bin/chromium`` if
    it exists, else None (nothing is refused here; callers word what is missing)."""
    env = os.environ.get("TTSCALE_CHROMIUM")
    if env:
        return env
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def require_browser(what: str) -> tuple:
    """``(sync_playwright, chromium path)`` for ``what`` (named in the error); refuses, in one sentence, a missing
    Playwright (the dev extra) or a missing Chromium."""
    try:
        from playwright.sync_api import sync_playwright  # deferred: Playwright comes with the dev extra, not ttscale
    except ImportError:
        raise TTScaleError(f"{what} needs Playwright to drive Chromium: pip install playwright (or pip install -e '.[dev]')") from None
    path = chromium_path()
    if path is None or not os.path.exists(path):
        raise TTScaleError(f"{what} needs Chromium, and {path or 'chromium'} is not there: apt-get install chromium "
                           "(or bash scripts/browser.sh), or point TTSCALE_CHROMIUM at a Chromium binary")
    return sync_playwright, path
