"""Search settings: which strategy, how wide, how deep, and how each strategy groups its candidates.

    strategy    groups per problem            each group keeps      stepwise   final answer
    best-of-n   N groups of width 1           its one sample        no         best aggregated PRM score
    weighted    N groups of width 1           its one sample        no         largest sum of scores per answer
    majority    N groups of width 1           its one sample        no         most frequent answer (no PRM)
    beam        1 group of width N            the best N/M          yes        best aggregated PRM score
    dvts        N/M groups of width M         the best 1            yes        best aggregated PRM score

A *group* of width W holds W candidates per step; its ``keep`` best unfinished candidates survive and share the
W children of the next step (M each when all survive). Beam search and DVTS differ only in these two numbers,
so DVTS with one subtree (N = M) is beam search with N = M (STYLE §10). Sampling strategies are groups of
width 1 that run to the end in one expansion and are scored once (REFERENCE §3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import ConfigError

# How a branch's step scores become one score (engine.search.prm.aggregate).
AGGREGATIONS = ("last", "min", "prod", "mean")

STRATEGIES = ("best-of-n", "majority", "weighted", "beam", "dvts")
STEPWISE = ("beam", "dvts")
ANSWER_RULE = {"best-of-n": "best", "weighted": "weighted", "majority": "majority", "beam": "best", "dvts": "best"}

# The gist of search-and-learn's system prompt (REFERENCE §3): `## Step k:` blocks separated by blank lines,
# ending with a boxed answer. Blank lines are the step delimiter, so the format asks for them.
DEFAULT_SYSTEM_PROMPT = (
    "Solve the following math problem efficiently and clearly:\n\n"
    "- For simple problems (2 steps or fewer):\nProvide a concise solution with minimal explanation.\n\n"
    "- For complex problems (3 steps or more):\nUse this step-by-step format:\n\n"
    "## Step 1: [Concise description]\n[Brief explanation and calculations]\n\n"
    "## Step 2: [Concise description]\n[Brief explanation and calculations]\n\n"
    "...\n\n"
    "Regardless of the approach, always conclude with:\n\n"
    "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.\n\n"
    "Where [answer] is just the final number or expression that solves the problem."
)


@dataclass(frozen=True)
class SearchConfig:
    """One search's settings; each field is a ``ttscale search`` flag (``beam_width`` is ``--beam-width``).

    ``n`` [--n]: samples (best-of-n, weighted, majority) or candidates per step (beam, dvts).
    ``beam_width`` [--beam-width] M: beam keeps N/M and each survivor expands M; DVTS runs N/M subtrees of M.
    ``max_steps`` [--max-steps] D: the D-th step ignores the delimiter and runs to the end (search-and-learn's
    last iteration). ``max_step_tokens`` [--max-step-tokens]: a step reaching it is cut (the branch goes on,
    unless it was the last step). ``lookahead`` [--lookahead] k: k greedy steps scored, then thrown away.
    ``agg`` [--agg]: how step scores become one score. ``delimiter``: the step separator, matched as a string.
    ``filter_duplicates``: unfinished candidates with the same text as an earlier one in their group are dropped.
    ``batch_problems`` [--batch-problems]: problems searched together in one decode loop.

    Refuses an unknown strategy or aggregation, N < 1, M < 1, N not divisible by M (beam, dvts), lookahead with a
    strategy that does not select per step, and non-positive depths, caps and batch sizes.
    """

    strategy: str = field(default="beam", metadata={"help": "best-of-n, majority, weighted, beam or dvts"})
    n: int = field(default=4, metadata={"help": "samples, or candidates per step for beam/dvts"})
    beam_width: int = field(default=4, metadata={"help": "M: beam keeps N/M and each survivor expands M; dvts runs N/M subtrees of M"})
    max_steps: int = field(default=6, metadata={"help": "steps per branch; the last runs to the end"})
    max_step_tokens: int = field(default=64, metadata={"help": "token cap of one step"})
    lookahead: int = field(default=0, metadata={"help": "k greedy steps scored and thrown away (beam, dvts)"})
    agg: str = field(default="last", metadata={"help": "step-score aggregation: " + ", ".join(AGGREGATIONS)})
    delimiter: str = field(default="\n\n", metadata={"help": "step separator, matched as a string (default: a blank line)"})
    filter_duplicates: bool = field(default=True, metadata={"help": "keep candidates whose text duplicates another's",
                                                            "flag": "--no-dedup", "negate": True})
    batch_problems: int = field(default=4, metadata={"help": "problems searched together in one decode loop"})

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"`strategy` {self.strategy!r} is unknown; use one of {', '.join(STRATEGIES)}")
        for name, least in (("n", 1), ("beam_width", 1), ("max_steps", 1), ("max_step_tokens", 1), ("lookahead", 0),
                            ("batch_problems", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"`{name}` must be an integer >= {least}, got {value!r}")
        if self.stepwise and self.n % self.beam_width:
            raise ConfigError(
                f"`n` {self.n} is not divisible by `beam_width` {self.beam_width}: {self.strategy} keeps N/M candidates per "
                f"step, so choose `n` as a multiple of {self.beam_width} or a `beam_width` that divides {self.n}")
        if self.lookahead and not self.stepwise:
            raise ConfigError(f"`lookahead` {self.lookahead} only applies to beam and dvts, which select per step; "
                              f"drop it for `strategy` {self.strategy}")
        if self.agg not in AGGREGATIONS:
            raise ConfigError(f"`agg` {self.agg!r} is unknown; use one of {', '.join(AGGREGATIONS)}")
        if not isinstance(self.delimiter, str) or not self.delimiter:
            raise ConfigError(f"`delimiter` must be a non-empty string, got {self.delimiter!r}; the default is a blank line")

    @property
    def stepwise(self) -> bool:
        """True for strategies that score and select after every step (beam, dvts)."""
        return self.strategy in STEPWISE

    @property
    def uses_prm(self) -> bool:
        """Majority voting needs no scores; every other strategy does."""
        return self.strategy != "majority"

    @property
    def answer_rule(self) -> str:
        """How the final answer is picked from the completions: ``best``, ``weighted`` or ``majority``."""
        return ANSWER_RULE[self.strategy]

    def groups(self) -> list[tuple[int, int]]:
        """``(width, keep)`` of each group of one problem (see the module table)."""
        if self.strategy == "beam":
            return [(self.n, self.n // self.beam_width)]
        if self.strategy == "dvts":
            return [(self.beam_width, 1)] * (self.n // self.beam_width)
        return [(1, 1)] * self.n
