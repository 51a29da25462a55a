"""transformers' sampling warpers for a :class:`~engine.logits.sampling.SamplingConfig` (kept apart so that the
config itself stays torch-free for the command-line flags)."""

from __future__ import annotations

from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from engine.logits.sampling import SamplingConfig


def warpers(sampling: SamplingConfig) -> list:
    """The transformers warpers for ``sampling``, in transformers' own order (temperature, top-k, top-p); none when
    greedy. Pair them with ``sampling.generate_kwargs()``, which switches transformers' own warping off."""
    if sampling.greedy:
        return []
    out = []
    if sampling.temperature != 1.0:
        out.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        out.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1.0:
        out.append(TopPLogitsWarper(sampling.top_p))
    return out
