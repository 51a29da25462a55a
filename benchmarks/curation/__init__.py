"""Curation benchmarks (``ttscale bench decontam``): the pipeline's stages timed on an in-process pool, no model.

:class:`DecontamOptions` lives here, not in ``decontam.py``, so that reading the flags imports neither the
benchmark nor datasketch (torch-free, like ``benchmarks/options.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import ConfigError


@dataclass(frozen=True)
class DecontamOptions:
    """What ``ttscale bench decontam`` runs. Refuses a pool under 1,000 questions and fractions outside [0, 0.2]."""

    questions: int = field(default=59_029, metadata={"help": "questions in the synthetic pool (s1's pool: 59,029)"})
    vocab: int = field(default=3000, metadata={"help": "words of the pool's vocabulary (Zipf-distributed)"})
    planted: float = field(default=0.01, metadata={"help": "fraction of questions given one 8-gram of an evaluation question"})
    duplicates: float = field(default=0.02, metadata={"help": "fraction of exact copies (case and spacing changed)"})
    near_duplicates: float = field(default=0.01, metadata={"help": "fraction of near copies (a prefix word added)"})
    seed: int = field(default=0, metadata={"help": "seed of the pool"})
    repeats: int = field(default=1, metadata={"help": "timed rounds of each phase; the fastest counts"})
    out: str | None = field(default=None, metadata={"help": "also write the JSON result to this file", "metavar": "FILE"})
    json: bool = field(default=False, metadata={"help": "print only the final JSON line"})

    def __post_init__(self):
        for name in ("questions", "vocab", "repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (1000 if name != "repeats" else 1):
                raise ConfigError(f"`{name}` must be an integer >= {1000 if name != 'repeats' else 1}, got {value!r}")
        for name in ("planted", "duplicates", "near_duplicates"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 0.2:
                raise ConfigError(f"`{name}` must be a fraction in [0, 0.2], got {value!r}")
