"""Lazy package exports (PEP 562): a package names what it exports and where each name lives, and the defining
module is imported on first use — so importing a package (``engine``, ``engine.search``) stays torch-free."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str], namespace: dict):
    """The module ``__getattr__`` for ``package``: ``exports`` maps each exported name to the module defining it; a
    name is imported on first access and then cached in ``namespace`` (the package's ``globals()``). Any other name
    raises ``AttributeError`` as Python does."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    return __getattr__
