"""Evaluation metrics: accuracy with a Wilson interval and s1's Control / Scaling / Performance.

s1 §3.2 (REFERENCE §1) scores a *method* from a set A of evaluation runs, one run per compute setting;
each run gives a = its average thinking tokens and f(a) = its accuracy (a fraction in [0, 1] here):

    Control     = |{a in A : a_min <= a <= a_max}| / |A|          (bounds per run or global; usually only a_max)
    Scaling     = mean over pairs (a, b) in A with a < b of  (f(b) - f(a)) / (b - a)
    Performance = max over A of f(a)

Units, exactly: ``scaling`` is accuracy (fraction) per thinking token; ``scaling_x100`` = 100 * scaling is
percentage points per thinking token, the "×100" form of the paper's table. The paper does not state the unit
of its table's figures (e.g. 15 for budget forcing on AIME24), so compare our numbers with each other, not with it.

The paper writes Scaling as a sum over pairs b > a divided by C(|A|, 2). We divide by the number of pairs
that actually have a < b: identical when all a differ; when two runs have equal a (a zero-width pair, whose
slope is undefined) we skip that pair instead of counting it as a slope of 0. Fewer than two distinct a's
give ``None`` (no slope exists).

Picking one answer out of N samples (majority, weighted, best-of-N) is not a metric: it is
:func:`engine.search.select.choose_answer`, which the evaluation's parallel methods call per row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from engine.errors import TTScaleError

Z95 = 1.959963984540054  # two-sided 95% normal quantile


# ----------------------------------------------------------------------------------------------- accuracy
@dataclass(frozen=True)
class Accuracy:
    """``correct`` out of ``total`` with ``value = correct / total`` and a Wilson interval [low, high]."""

    correct: int
    total: int
    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Unlike the normal interval it stays inside [0, 1] and is not empty at 0/n or n/n, which matters for
    30-problem benchmarks such as AIME. Refuses ``total <= 0`` and ``correct`` outside [0, total].
    """
    if not isinstance(total, int) or total <= 0:
        raise TTScaleError(f"total={total!r}: an interval needs at least one sample; evaluate at least one problem first")
    if not isinstance(correct, int) or not 0 <= correct <= total:
        raise TTScaleError(f"correct={correct!r} must be an integer between 0 and total={total}")
    p = correct / total
    z2 = z * z
    denom = 1.0 + z2 / total
    center = (p + z2 / (2 * total)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    # The bounds hold p exactly: rounding leaves center - half at ~3e-18 for 0/100, which a plot reads as a negative error bar.
    return min(p, max(0.0, center - half)), max(p, min(1.0, center + half))


def accuracy(flags: Iterable[bool], z: float = Z95) -> Accuracy:
    """Accuracy of a sequence of correct/incorrect flags, with its Wilson interval. Refuses an empty sequence."""
    flags = list(flags)
    if not flags:
        raise TTScaleError("accuracy() got no samples; evaluate at least one problem before computing accuracy")
    correct = sum(1 for f in flags if bool(f))
    low, high = wilson_interval(correct, len(flags), z)
    return Accuracy(correct=correct, total=len(flags), value=correct / len(flags), low=low, high=high)


# ----------------------------------------------------------------------------------- s1 §3.2 metrics
@dataclass(frozen=True)
class Run:
    """One evaluation run of a method: average thinking tokens ``a``, accuracy ``f`` in [0, 1], optional bounds."""

    a: float
    f: float
    a_min: float | None = None
    a_max: float | None = None

    def __post_init__(self):
        if not (isinstance(self.a, (int, float)) and math.isfinite(self.a) and self.a >= 0):
            raise TTScaleError(f"Run.a={self.a!r}: average thinking tokens must be a finite number >= 0")
        if not (isinstance(self.f, (int, float)) and 0.0 <= self.f <= 1.0):
            raise TTScaleError(f"Run.f={self.f!r}: accuracy must be a fraction in [0, 1], not a percentage")


@dataclass(frozen=True)
class ScalingMetrics:
    """s1 §3.2 metrics of one method. ``control`` is None when no bound applies; ``scaling`` when no slope exists."""

    control: float | None
    scaling: float | None
    scaling_x100: float | None
    performance: float
    runs: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check_runs(runs: Sequence[Run]) -> list[Run]:
    runs = list(runs)
    if not runs:
        raise TTScaleError("the s1 metrics need at least one run; got none")
    for r in runs:
        if not isinstance(r, Run):
            raise TTScaleError(f"expected metrics.Run objects, got {type(r).__name__}; wrap (a, f) as Run(a=..., f=...)")
    return runs


def control(runs: Sequence[Run], a_min: float | None = None, a_max: float | None = None) -> float | None:
    """Fraction of runs whose average thinking tokens lie within their bounds (s1 §3.2, eq. 1).

    A run's own ``a_min``/``a_max`` take precedence over the global ones; a missing bound does not constrain.
    Returns None when no run has any bound (Control is not measured then, rather than a vacuous 100%).
    Refuses an empty list.
    """
    runs = _check_runs(runs)
    inside, bounded = 0, False
    for r in runs:
        lo = r.a_min if r.a_min is not None else a_min
        hi = r.a_max if r.a_max is not None else a_max
        bounded |= lo is not None or hi is not None
        inside += (lo is None or r.a >= lo) and (hi is None or r.a <= hi)
    return inside / len(runs) if bounded else None


def scaling(runs: Sequence[Run]) -> float | None:
    """Average slope (f(b) - f(a)) / (b - a) over all pairs of runs with a < b (s1 §3.2, eq. 2).

    In accuracy (fraction) per thinking token. Pairs with equal a are skipped (see the module docstring);
    None when fewer than two distinct a's exist. Refuses an empty list.
    """
    runs = _check_runs(runs)
    slopes = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            lo, hi = sorted((runs[i], runs[j]), key=lambda r: r.a)
            if hi.a > lo.a:
                slopes.append((hi.f - lo.f) / (hi.a - lo.a))
    return sum(slopes) / len(slopes) if slopes else None


def performance(runs: Sequence[Run]) -> float:
    """Best accuracy over the runs (s1 §3.2, eq. 3). Refuses an empty list."""
    return max(r.f for r in _check_runs(runs))


def scaling_metrics(runs: Sequence[Run], a_min: float | None = None, a_max: float | None = None) -> ScalingMetrics:
    """Control, Scaling (and ×100, percentage points per token) and Performance of one method's runs."""
    runs = _check_runs(runs)
    s = scaling(runs)
    return ScalingMetrics(control=control(runs, a_min, a_max), scaling=s, scaling_x100=None if s is None else 100.0 * s,
                          performance=performance(runs), runs=len(runs))

