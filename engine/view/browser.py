"""Where the headless Chromium that shows, tests and measures the viewer's pages is, and how it is started.

``chromium_path()`` is ``TTSCALE_CHROMIUM``, else ``chromium`` on ``PATH`` (Debian's package, which
``scripts/browser.sh`` installs), else None. ``CHROMIUM_ARGS``: as root in a container Chromium needs
``--no-sandbox``; on a machine without network the background-networking flags keep it from trying to reach out.
"""

from __future__ import annotations

import os
import shutil

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
