"""Which models the tree cache can serve, read from the model's config; everything else is refused up front.

Three kinds of model are served, and ``ModelLayout.output`` names the output field the manager reads:

    causal LM              (LlamaForCausalLM, ...)            .logits             (B, T, V) next-token logits
    token classifier       (LlamaForTokenClassification, ...) .logits             (B, T, num_labels)
    decoder body, no head  (LlamaModel = causal_lm.base_model) .last_hidden_state  (B, T, H)

The cache feeds a stock model three things it must honour: ``position_ids`` (each branch's true depth), a 4-D
additive ``attention_mask`` (which pool rows each query may see) and a ``Cache`` whose ``update`` returns gathered
rows. That rules out:

- encoder-decoders and bidirectional (non-causal) decoders;
- attention kinds other than full and sliding-window (chunked, linear/recurrent, indexed, shared-KV "dummy"
  layers): their state is not a per-token key/value row;
- attention implementations that cannot take a 4-D float mask (flash-attention, flex): reload with SDPA;
- sliding layers with different windows (the model passes one mask per attention kind, so one window per kind).

Models that pass these checks get a short self-check in :class:`engine.kv_cache.manager.KVCacheManager`
against a plain forward, which catches a forward that silently ignores our mask or positions.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers.cache_utils import get_layer_types_and_kwargs

from engine.errors import TTScaleError
from engine.kv_cache.compat import CACHE_ARGUMENTS, cache_argument

SUPPORTED_KINDS = ("full_attention", "sliding_attention")
MASK_ATTENTION = ("eager", "sdpa")


@dataclass(frozen=True)
class ModelLayout:
    """What the cache needs to know about a model: per-layer attention kind and each kind's window."""

    layer_kinds: tuple[str, ...]           # kind of each decoder layer, in order
    windows: dict[str, int | None]         # kind -> sliding window (None = full attention)
    mask_as_dict: bool                     # pass {kind: mask} (mixed kinds) rather than one tensor
    takes_logits_to_keep: bool             # forward computes logits only at chosen positions
    output: str                            # output field read per token: "logits", or "last_hidden_state" for a body
    cache_argument: str                    # forward's keyword for the cache: "cache" (5.24+) or "past_key_values"
    vocab_size: int
    dtype: torch.dtype
    device: torch.device


def inspect_model(model) -> ModelLayout:
    """Read the layout of a causal LM, a token classifier or a decoder body (a model's ``base_model``), or refuse
    (``TTScaleError``) an architecture the tree cache cannot serve."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    if not isinstance(model, torch.nn.Module) or config is None:
        raise TTScaleError(f"model must be a transformers causal LM (a torch Module with a .config), got {name}; load one with engine.models.load_model")
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(config, "is_encoder_decoder", False):
        raise TTScaleError(f"model {name} is an encoder-decoder; the KV-cache manager serves decoder-only causal LMs, so use a decoder-only model")
    if not getattr(text, "is_causal", True) or getattr(text, "use_bidirectional_attention", False):
        raise TTScaleError(f"model {name} uses bidirectional attention; the KV-cache manager needs causal attention, so use a causal LM config")

    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl not in MASK_ATTENTION:
        raise TTScaleError(
            f"model {name} uses attn_implementation={impl!r}, which cannot take the 4-D tree mask; "
            "reload it with attn_implementation='sdpa' (or 'eager')"
        )

    params = inspect.signature(model.forward).parameters
    missing = [p for p in ("input_ids", "attention_mask", "position_ids") if p not in params]
    cache_arg = cache_argument(model)
    if cache_arg is None:
        missing.append(" or ".join(CACHE_ARGUMENTS))
    if missing:
        raise TTScaleError(f"model {name}.forward has no {', '.join(missing)} argument(s); the KV-cache manager needs ids, mask, positions and a cache, so use a transformers causal LM")

    try:
        kinds, kwargs = get_layer_types_and_kwargs(text)
    except Exception as err:  # a config too old or too exotic to describe its layers
        raise TTScaleError(f"model {name}: cannot read its layer types from the config ({err}); this architecture is not supported by the KV-cache manager") from err
    kinds = list(kinds)[: text.num_hidden_layers]
    unsupported = sorted(set(kinds) - set(SUPPORTED_KINDS))
    if unsupported:
        raise TTScaleError(
            f"model {name} has layer types {unsupported}; the KV-cache manager serves only {list(SUPPORTED_KINDS)} "
            "(per-token keys/values), so use a model without chunked, linear/recurrent or shared-KV layers"
        )
    windows: dict[str, int | None] = {}
    for kind, kw in zip(kinds, kwargs):
        window = kw.get("sliding_window") if kind == "sliding_attention" else None
        if kind == "sliding_attention" and (not isinstance(window, int) or window < 1):
            raise TTScaleError(f"model {name} has a sliding-attention layer with sliding_window={window!r}; it must be a positive int")
        if windows.setdefault(kind, window) != window:
            raise TTScaleError(f"model {name} has sliding layers with different windows ({windows[kind]} and {window}); one window per attention kind is supported")

    first = next(model.parameters())
    return ModelLayout(
        layer_kinds=tuple(kinds),
        windows=windows,
        mask_as_dict=len(windows) > 1,
        takes_logits_to_keep="logits_to_keep" in params,
        output="last_hidden_state" if getattr(model, "base_model", None) is model else "logits",  # a body is its own base_model
        cache_argument=cache_arg,
        vocab_size=int(getattr(text, "vocab_size", 0) or model.get_input_embeddings().weight.shape[0]),  # ids index the input embedding
        dtype=getattr(model, "dtype", first.dtype),  # activation dtype; the masks must match it
        device=first.device,
    )
