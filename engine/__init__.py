"""ttscale's engine: model loading, thinking formats, budget forcing, the forking KV cache and search.

Importing the package loads no model library: ``engine.models`` (torch, transformers) is imported by the modules
that load a model, so that torch-free parts (``engine.answers``, ``engine.cli.args``) and the grader benchmark
stay torch-free.
"""

from engine.errors import TTScaleError
from engine.formats import FORMATS, ThinkingFormat, get_format

__all__ = ["TTScaleError", "FORMATS", "ThinkingFormat", "get_format"]
