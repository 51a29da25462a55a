"""Sampling settings, and the warpers we run ourselves so budget forcing sees the final distribution.

transformers applies temperature/top-k/top-p *after* custom processors (REFERENCE §5). Budget forcing must know
the probability the sampler will put on ending thinking, so the engine builds the warpers itself, places them in
front of the budget processor, and calls ``generate`` with its own warpers switched off (temperature 1, top-k 0,
top-p 1). The sampler then draws from exactly the distribution the budget processor saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from engine.errors import TTScaleError


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings. ``temperature == 0`` means greedy; ``top_k == 0`` and ``top_p == 1`` switch those off."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise TTScaleError(f"--temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise TTScaleError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise TTScaleError(f"--top-k must be >= 0 (0 switches it off), got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def warpers(self) -> list:
        """The transformers warpers for these settings, in transformers' own order (temperature, top-k, top-p)."""
        if self.greedy:
            return []
        out = []
        if self.temperature != 1.0:
            out.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k > 0:
            out.append(TopKLogitsWarper(self.top_k))
        if self.top_p < 1.0:
            out.append(TopPLogitsWarper(self.top_p))
        return out

    def generate_kwargs(self) -> dict:
        """Arguments for ``model.generate`` that leave all warping to :meth:`warpers`."""
        if self.greedy:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
