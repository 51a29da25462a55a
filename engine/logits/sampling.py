"""Sampling settings (torch-free), and why the engine runs the warpers itself so budget forcing sees the final distribution.

transformers applies temperature/top-k/top-p *after* custom processors (REFERENCE §5). Budget forcing must know
the probability the sampler will put on ending thinking, so the engine builds the warpers itself, places them in
front of the budget processor, and calls ``generate`` with its own warpers switched off (temperature 1, top-k 0,
top-p 1). The sampler then draws from exactly the distribution the budget processor saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.errors import ConfigError


def _number(x) -> bool:
    """A finite int or float (not a bool): NaN compares false with everything and would slip past range checks."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings. ``temperature == 0`` means greedy; ``top_k == 0`` and ``top_p == 1`` switch those off."""

    temperature: float = field(default=0.0, metadata={"help": "sampling temperature; 0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling: keep the smallest set of tokens with this much probability"})
    top_k: int = field(default=0, metadata={"help": "keep the k most likely tokens (0 = off)"})
    seed: int | None = field(default=None, metadata={"help": "random seed: the same seed gives the same samples"})

    def __post_init__(self):
        if not _number(self.temperature) or self.temperature < 0:
            raise ConfigError(f"`temperature` must be a number >= 0 (0 means greedy), got {self.temperature!r}")
        if not _number(self.top_p) or not 0 < self.top_p <= 1:
            raise ConfigError(f"`top_p` must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0:
            raise ConfigError(f"`top_k` must be an integer >= 0 (0 switches it off), got {self.top_k!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0):
            raise ConfigError(f"`seed` must be an integer >= 0 (or unset), got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def generate_kwargs(self) -> dict:
        """Arguments for ``model.generate`` that leave all warping to :func:`engine.logits.warpers.warpers`."""
        if self.greedy:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
