"""Headless Debian Chromium driven by Playwright for the viewer's tests (a helper module, not a conftest).

``scripts/test.sh`` installs Chromium (``scripts/browser.sh``) and setup.py's dev extra installs Playwright, so a
machine set up by the README's test command has both. Elsewhere the browser tests skip with the reason, except in CI
(``conftest.need_browser``).
"""

from __future__ import annotations

import os

import pytest
from conftest import need_browser

from engine.view.browser import CHROMIUM_ARGS


class Page:
    """One loaded page: Playwright's page plus every console message and page error seen."""

    def __init__(self, page):
        self.page, self.console, self.errors = page, [], []
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str, kind: str) -> Page:
        """Open a page file and wait until the viewer says it has drawn ``kind``."""
        self.page.goto("file://" + os.path.abspath(path))
        return self.wait(kind)

    def wait(self, kind: str) -> Page:
        self.page.wait_for_function(f"window.ttscaleView && window.ttscaleView.kind === {kind!r}", timeout=30_000)
        return self

    def problems(self) -> list:
        """Console errors and warnings plus uncaught page errors: a clean page has none."""
        return [m for m in self.console if m[0] in ("error", "warning")] + self.errors

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module."""
    sync_playwright, path = need_browser("the viewer's browser tests")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page (1280×900) for one test; closed after it."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Page(ctx.new_page())
    ctx.close()
