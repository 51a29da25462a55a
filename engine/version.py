"""The installed ttscale version, for ``ttscale --version`` (package metadata, else the checkout's setup.py)."""

from __future__ import annotations

import importlib.metadata
import os
import re

_SETUP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


def package_version() -> str:
    """The installed ``ttscale`` version (package metadata), else the ``version=`` of the checkout's setup.py.

    Returns ``"unknown"`` when neither is available; refuses nothing.
    """
    try:
        return importlib.metadata.version("ttscale")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with open(_SETUP, encoding="utf-8") as fh:
            found = re.search(r"""\bversion\s*=\s*["']([^"']+)["']""", fh.read())
    except OSError:
        found = None
    return found.group(1) if found else "unknown"
