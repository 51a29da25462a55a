"""How to hand a cache to a model's forward, on both sides of transformers' rename of the argument.

transformers 5.24 renamed a model's cache argument from ``past_key_values=`` to ``cache=`` (the old keyword is
still accepted, deprecated, until 5.40, but it is gone from ``forward``'s signature) and model outputs carry
``.cache`` instead of ``.past_key_values``. Every place in ttscale that runs a model's forward itself asks this
module, which reads the name off the forward it is about to call, never off a version string:

    kwargs = cache_kwargs(model, cache)        # {"cache": cache, "use_cache": True} on 5.24+, past_key_values before
    out = model(input_ids=ids, **kwargs)
    returned = returned_cache(out)             # models update the passed cache in place; most also return it
    cache = cache if returned is None else returned

``generate`` follows its model's forward (both were renamed in the same release), so ``cache_kwargs`` serves it too.
Code that runs a forward every step reads the name once at construction (:func:`require_cache_argument`; the
KV-cache manager keeps it in its ``ModelLayout``), which also refuses a model before any work starts.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

from engine.errors import TTScaleError

# Newest name first: a forward that lists both (a model written for the transition) gets the current one.
CACHE_ARGUMENTS = ("cache", "past_key_values")


def cache_argument(module) -> str | None:
    """The keyword ``module``'s forward takes its cache by (``"cache"`` or ``"past_key_values"``), or None if neither.

    ``module`` is a model or a model class. Read from ``inspect.signature`` of its forward, so a subclass with
    its own forward is judged by that forward. A forward that takes neither by name (only ``**kwargs``, say),
    or an object without a forward, gives None.
    """
    forward = getattr(module, "forward", None)
    if forward is None:
        return None
    return _argument_of(forward.__func__ if inspect.ismethod(forward) else forward)


def require_cache_argument(module) -> str:
    """Like :func:`cache_argument`, but refuses (``TTScaleError``) a forward that takes no cache argument."""
    name = cache_argument(module)
    if name is None:
        raise TTScaleError(
            f"model {type(module).__name__}.forward takes no cache argument (neither {' nor '.join(CACHE_ARGUMENTS)}); "
            "ttscale needs a transformers causal LM whose forward takes a KV cache"
        )
    return name


def cache_kwargs(module, cache) -> dict:
    """Keyword arguments that hand ``cache`` to ``module``'s forward (or ``generate``) and ask it to use it.

    Refuses (``TTScaleError``) a module whose forward takes no cache argument.
    """
    return {require_cache_argument(module): cache, "use_cache": True}


def returned_cache(output):
    """The cache a model output carries (``.cache`` on 5.24+, ``.past_key_values`` before), or None."""
    for name in CACHE_ARGUMENTS:
        cache = getattr(output, name, None)
        if cache is not None:
            return cache
    return None


@lru_cache(maxsize=256)
def _argument_of(func) -> str | None:
    """Memoised per function: signatures do not change at run time, and forwards run every step."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin or C-level callable without a readable signature
        return None
    return next((name for name in CACHE_ARGUMENTS if name in params), None)
