"""ttscale's engine: model loading, thinking formats, budget forcing, the forking KV cache and search.

The names below are exported lazily (PEP 562): ``from engine import load_model`` imports ``engine.models`` (and so
torch) only then, so that ``import engine.cli`` — and ``ttscale --help`` — stays torch-free.
"""

import importlib

_EXPORTS = {
    "TTScaleError": "engine.errors",
    "FORMATS": "engine.formats", "ThinkingFormat": "engine.formats", "get_format": "engine.formats",
    "DEFAULT_MODEL": "engine.model_config", "ModelConfig": "engine.model_config",
    "LoadedModel": "engine.models", "load_model": "engine.models",
    "ThinkingEngine": "engine.engine",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import the module that defines an exported ``name`` on first use; refuse any other name as Python does."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
