"""ttscale's engine: model loading, thinking formats, budget forcing, the forking KV cache and search.

The names below are exported lazily (PEP 562): ``from engine import load_model`` imports ``engine.models`` (and so
torch) only then, so that ``import engine.cli`` — and ``ttscale --help`` — stays torch-free.
"""

from engine.lazy import lazy_exports

_EXPORTS = {
    "TTScaleError": "engine.errors",
    "FORMATS": "engine.formats", "ThinkingFormat": "engine.formats", "get_format": "engine.formats",
    "DEFAULT_MODEL": "engine.model_config", "ModelConfig": "engine.model_config",
    "LoadedModel": "engine.models", "load_model": "engine.models",
    "ThinkingEngine": "engine.engine",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports("engine", _EXPORTS, globals())
