"""ttscale's engine: model loading, thinking formats, budget forcing, the forking KV cache and search."""

from engine.errors import TTScaleError
from engine.formats import FORMATS, ThinkingFormat, get_format
from engine.models import DEFAULT_MODEL, LoadedModel, load_model

__all__ = ["TTScaleError", "FORMATS", "ThinkingFormat", "get_format", "DEFAULT_MODEL", "LoadedModel", "load_model"]
