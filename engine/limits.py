"""Context limits: a prompt plus the generation cap must fit in the positions the model handles.

:func:`check_context` refuses, with the numbers, a request the model cannot hold, before any token is generated
(a model asked past its positions either raises deep inside attention or silently produces garbage).
"""

from __future__ import annotations

from engine.errors import TTScaleError

DEFAULT_FIX = "--max-thinking-tokens / --max-answer-tokens"
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def _config_of(model_or_config):
    """The transformers config behind a :class:`~engine.models.LoadedModel`, a model or a config (text part)."""
    obj = model_or_config
    inner = getattr(obj, "model", None)  # a LoadedModel wraps the torch module
    if inner is not None and hasattr(inner, "config"):
        obj = inner
    config = getattr(obj, "config", obj)
    get_text = getattr(config, "get_text_config", None)
    return get_text() if callable(get_text) else config


def max_positions(model_or_config) -> int | None:
    """The number of positions the model handles (``max_position_embeddings`` or its older names), or None.

    Accepts a :class:`~engine.models.LoadedModel`, a transformers model or a config. Returns None when the config
    does not say (the caller then skips the check); refuses nothing.
    """
    config = _config_of(model_or_config)
    for key in _POSITION_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _model_name(model_or_config, config) -> str:
    name = getattr(model_or_config, "name", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(config, "name_or_path", None) or getattr(config, "_name_or_path", None)
    return name or f"this {getattr(config, 'model_type', None) or 'model'} model"


def check_context(model_or_config, prompt_tokens: int, new_tokens: int, what: str, *, name: str | None = None,
                  fix: str = DEFAULT_FIX) -> int | None:
    """Refuse a prompt whose length plus the generation cap exceeds the model's positions; return the limit.

    ``what`` names the prompt in the sentence ("prompt 1 of 3"); ``name`` the model (default: the LoadedModel's
    name or the config's ``name_or_path``); ``fix`` the flags that lower the cap. Returns None, and checks
    nothing, when the model's limit is unknown. Raises :class:`TTScaleError` (one sentence with the numbers)
    when ``prompt_tokens + new_tokens`` is above the limit, and ``ValueError`` for a negative or non-integer count.
    """
    for label, value in (("prompt_tokens", prompt_tokens), ("new_tokens", new_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"check_context: {label} must be an integer >= 0, got {value!r}")
    limit = max_positions(model_or_config)
    if limit is None or prompt_tokens + new_tokens <= limit:
        return limit
    shown = name or _model_name(model_or_config, _config_of(model_or_config))
    if prompt_tokens >= limit:
        raise TTScaleError(f"{what} has {prompt_tokens:,} tokens, but {shown} handles {limit:,} positions in all; "
                           "shorten the prompt")
    raise TTScaleError(f"{what} has {prompt_tokens:,} tokens and the budget allows {new_tokens:,} more, but {shown} handles "
                       f"{limit:,} positions; shorten the prompt or lower {fix} (at most {limit - prompt_tokens:,} new tokens fit)")

