"""The selection stage: K questions out of those that survived, by s1's rule or one of its ablations (REFERENCE §1).

    chosen = select(questions, SelectionConfig(k=1000, method="diverse", seed=0), record=drops.append)

``diverse`` (s1K, paper §2.3): repeat until K are chosen —

    1. pick a domain uniformly at random among the domains that still have questions;
    2. rank that domain's remaining questions by trace length, longest first (rank 0);
    3. take one with probability proportional to 2^(-rank), and remove it.

``longest`` (s1's 1K-longest ablation): the K longest traces. ``random`` (1K-random): K uniformly at random.

Trace length (:func:`trace_length`), first found: ``metadata["difficulty"]["trace_tokens"]``; then the trace
stage's ``metadata["traces"]`` — a dict or a list of dicts, the first trace counting as s1 counted
``thinking_trajectories[0]`` — its ``thinking_tokens``. A question without either is refused by ``diverse`` and
``longest``. Ties in length are broken by question id, so the ranking, and the whole selection for a seed, is
deterministic. Every question not chosen is recorded as a :class:`Drop` (reason ``not_selected``); chosen ones get
``metadata["selection"] = {"method", "order", "domain", "rank", "trace_tokens"}``. Pure Python: one
:class:`random.Random` per call.

s1's released notebook (``data/filter.ipynb``) did more than the paper says: it first kept every GPQA and AIME
question Gemini solved and the MATH ones with traces over 5,600 tokens, and after 700 picks it drew domains in
proportion to GPQA's and AIME's domain mix instead of uniformly. Only the paper's rule is implemented here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from curation.schema import Drop, Question
from engine.errors import ConfigError, TTScaleError

STAGE = "selection"
METHODS = ("diverse", "longest", "random")


@dataclass(frozen=True)
class SelectionConfig:
    """How many questions to keep and how; each field maps to one flag of ``ttscale curate`` (STYLE §9).
    Refuses an unknown method, ``k < 1`` and a negative or non-integer seed."""

    k: int = field(default=1000, metadata={"help": "questions to select (s1K: 1000)"})
    method: str = field(default="diverse", metadata={
        "help": "diverse (s1: uniform domain, then 2^-rank by trace length), longest or random (s1's ablations)",
        "choices": list(METHODS)})
    seed: int = field(default=0, metadata={"help": "seed of the random choices (the same seed selects the same questions)"})

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"`method` {self.method!r} is unknown; use one of {', '.join(METHODS)}")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ConfigError(f"`k` must be an integer >= 1, got {self.k!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"`seed` must be an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict:
        """The configuration as the manifest stores it."""
        return asdict(self)


# ------------------------------------------------------------------------------------------- what the rule reads
def first_trace(question: Question) -> dict | None:
    """The first trace the trace stage stored (``metadata["traces"]["samples"][0]``, as ``curation/traces.py`` writes
    it; also one dict, a list of dicts, or a dict with a ``traces`` list); None when there is none. Refuses nothing."""
    traces = question.metadata.get("traces")
    if isinstance(traces, dict) and isinstance(traces.get("samples"), list):  # the trace stage's shape (curation/traces.py)
        traces = traces["samples"]
    elif isinstance(traces, dict) and isinstance(traces.get("traces"), list):
        traces = traces["traces"]
    if isinstance(traces, list):
        traces = traces[0] if traces else None
    return traces if isinstance(traces, dict) else None


def _count(value) -> float | None:
    """A token count (an int, or the mean over several traces, a float) when it is one; else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value >= 0
    return value if ok else None


def trace_length(question: Question) -> float | None:
    """The question's trace length in tokens (module docstring: the difficulty stage's ``trace_tokens``, else the
    first trace's ``thinking_tokens``); None when neither is recorded. Refuses nothing."""
    difficulty = question.metadata.get("difficulty")
    if isinstance(difficulty, dict) and _count(difficulty.get("trace_tokens")) is not None:
        return difficulty["trace_tokens"]
    trace = first_trace(question)
    return _count(trace.get("thinking_tokens")) if trace else None


def question_domain(question: Question) -> str | None:
    """The code the diversity stage stored (``metadata["domain"]["code"]``), else None. Refuses nothing."""
    domain = question.metadata.get("domain")
    code = domain.get("code") if isinstance(domain, dict) else None
    return code if isinstance(code, str) and code else None


# ------------------------------------------------------------------------------------------- the rules
def rank_by_length(questions: list[Question]) -> list[Question]:
    """Longest trace first (rank 0); equal lengths in question-id order. Refuses a question without a length."""
    return sorted(questions, key=lambda q: (-_length_or_refuse(q), q.id))


def draw_rank(n: int, rng: random.Random) -> int:
    """A rank in ``[0, n)`` drawn with probability 2^(-rank) / sum_{r<n} 2^(-r). The cumulative walk stops after
    about two steps on average, so a domain of any size costs O(1) per draw. Refuses ``n < 1``."""
    if n < 1:
        raise TTScaleError(f"cannot draw a rank among {n} questions; a domain must still have questions")
    total = 2.0 - 2.0 ** (1 - n)            # sum of 2^-r for r < n
    u = rng.random() * total
    acc, weight = 0.0, 1.0
    for r in range(n):
        acc += weight
        if u < acc:
            return r
        weight *= 0.5
    return n - 1                            # only reached through float rounding at the very end of the range


def select_diverse(questions: list[Question], k: int, rng: random.Random) -> list[tuple[Question, str, int]]:
    """s1's rule (module docstring): ``k`` (question, domain, rank-when-drawn) triples in the order drawn.
    Refuses a question without a domain or a trace length, and ``k`` above the number of questions."""
    by_domain: dict[str, list[Question]] = {}
    for q in questions:
        code = question_domain(q)
        if code is None:
            raise TTScaleError(f"question {q.id} ({q.source or 'no source'}) has no metadata['domain']; run the "
                               "diversity stage before selecting with method diverse")
        by_domain.setdefault(code, []).append(q)
    _check_k(k, len(questions))
    ranked = {code: rank_by_length(qs) for code, qs in by_domain.items()}
    live = sorted(ranked)                   # domains that still have questions, in code order (determinism)
    out = []
    while len(out) < k:
        code = live[rng.randrange(len(live))]          # 1. uniform over live domains
        pool = ranked[code]                            # 2. already ranked, longest first; removals keep the order
        r = draw_rank(len(pool), rng)                  # 3. P(rank) ~ 2^-rank
        out.append((pool.pop(r), code, r))
        if not pool:
            live.remove(code)
    return out


def select_longest(questions: list[Question], k: int) -> list[tuple[Question, str | None, int]]:
    """The ``k`` longest traces (ties by id), longest first. Refuses what :func:`rank_by_length` refuses."""
    _check_k(k, len(questions))
    return [(q, question_domain(q), r) for r, q in enumerate(rank_by_length(questions)[:k])]


def select_random(questions: list[Question], k: int, rng: random.Random) -> list[tuple[Question, str | None, None]]:
    """``k`` questions uniformly at random without replacement (drawn from the id order, so input order does not
    matter)."""
    _check_k(k, len(questions))
    return [(q, question_domain(q), None) for q in rng.sample(sorted(questions, key=lambda q: q.id), k)]


def select(questions: Iterable[Question], config: SelectionConfig | None = None,
           record: Callable[[Drop], None] | None = None) -> list[Question]:
    """The chosen questions in the order chosen, each with ``metadata["selection"]``; ``record`` receives a
    :class:`Drop` (reason ``not_selected``) for every other question. Refuses ``k`` above the number of questions
    (one sentence with both numbers), two questions with one id, and what the chosen rule refuses."""
    config = config or SelectionConfig()
    questions = list(questions)
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise TTScaleError(f"question id {q.id} occurs twice in the selection's input; deduplicate before selecting")
        seen.add(q.id)
    _check_k(config.k, len(questions))
    rng = random.Random(config.seed)
    if config.method == "diverse":
        chosen = select_diverse(questions, config.k, rng)
    elif config.method == "longest":
        chosen = select_longest(questions, config.k)
    else:
        chosen = select_random(questions, config.k, rng)
    picked = set()
    out = []
    for order, (q, code, rank) in enumerate(chosen):
        q.metadata["selection"] = {"method": config.method, "order": order, "domain": code, "rank": rank,
                                   "trace_tokens": trace_length(q)}
        picked.add(q.id)
        out.append(q)
    if record is not None:
        for q in questions:
            if q.id not in picked:
                record(Drop(q.id, STAGE, "not_selected", f"not among the {config.k} chosen by {config.method} "
                                                         f"(seed {config.seed})", q.source))
    return out


def _length_or_refuse(q: Question) -> int:
    n = trace_length(q)
    if n is None:
        raise TTScaleError(f"question {q.id} ({q.source or 'no source'}) has no trace length (metadata['difficulty']"
                           "['trace_tokens'] or a trace's thinking_tokens); run the trace stage first, or select with method random")
    return n


def _check_k(k: int, n: int) -> None:
    if k > n:
        raise ConfigError(f"`k` is {k} but only {n} question{'s' if n != 1 else ''} survived the earlier stages; "
                          f"lower `k` to at most {n}")
