"""Selection: which candidates survive a step, how the survivors share the next step, which answer wins.

Pure functions of scores and group labels, testable without a model (STYLE §7). Beam search and DVTS call the
same :func:`select`; they only label candidates differently (one group per problem vs one per subtree) and keep
a different number per group (N/M vs 1), see :mod:`engine.search.config`.

    candidates  group  score  finished  text         select(keep=1)
        0         0     .4      no      "a"          pruned
        1         0     .9      no      "b"          kept         (best unfinished of group 0)
        2         0     .2      yes     "c<eos>"     finished     (completions never compete for a slot)
        3         1     .7      no      "d"          kept
        4         1     .8      no      "d"          duplicate    (same text as 3 in its group; dropped first)

Finished candidates leave the beam as completions whatever their score, as in search-and-learn's beam search
(REFERENCE §3); the ``keep`` best *unfinished* candidates of each group survive; ties go to the earlier one.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from engine.answers import group_answers
from engine.errors import TTScaleError

ANSWER_RULES = ("best", "majority", "weighted")


@dataclass(frozen=True)
class Candidate:
    """What selection needs to know about one candidate: its group, its aggregated score, whether it is finished,
    and a key for duplicate detection (``None``: never a duplicate)."""

    group: Hashable
    score: float | None
    finished: bool = False
    key: Hashable | None = None


@dataclass
class Selection:
    """Indices into the candidate list, each in candidate order: every candidate is in exactly one list."""

    kept: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)

    def status(self, i: int) -> str:
        """The tree status of candidate ``i``: kept, finished, pruned or duplicate."""
        for name, items in (("kept", self.kept), ("finished", self.finished), ("pruned", self.pruned), ("duplicate", self.duplicates)):
            if i in items:
                return name
        raise KeyError(i)


def _rank(score: float | None) -> float:
    """Sort key of a score: a missing or NaN score ranks below every real one."""
    return -math.inf if score is None or score != score else float(score)


def select(candidates: Sequence[Candidate], keep: int, filter_duplicates: bool = True) -> Selection:
    """Split candidates into kept / finished / pruned / duplicates, keeping the ``keep`` best unfinished per group.

    Refuses ``keep < 1``.
    """
    if not isinstance(keep, int) or keep < 1:
        raise TTScaleError(f"select(keep={keep!r}): each group must keep at least one candidate")
    out = Selection()
    seen: set = set()
    by_group: dict[Hashable, list[int]] = {}
    for i, c in enumerate(candidates):
        if c.finished:
            out.finished.append(i)
            continue
        if filter_duplicates and c.key is not None:
            if (c.group, c.key) in seen:
                out.duplicates.append(i)
                continue
            seen.add((c.group, c.key))
        by_group.setdefault(c.group, []).append(i)
    for members in by_group.values():
        ranked = sorted(members, key=lambda i: (-_rank(candidates[i].score), i))
        out.kept += ranked[:keep]
        out.pruned += ranked[keep:]
    out.kept.sort()
    out.pruned.sort()
    return out


def share(survivors: int, width: int) -> list[int]:
    """How many children each of ``survivors`` gets so that the group has ``width`` candidates again.

    ``width // survivors`` each, the first ``width % survivors`` one more (search-and-learn refills the beam by
    repeating its survivors in order). Refuses ``survivors`` < 0 and ``width`` < ``survivors``.
    """
    if survivors < 0 or width < survivors:
        raise TTScaleError(f"share(survivors={survivors}, width={width}): need 0 <= survivors <= width")
    if survivors == 0:
        return []
    return [width // survivors + (i < width % survivors) for i in range(survivors)]


def choose_index(answers: Sequence[str | None], scores: Sequence[float | None], rule: str) -> int | None:
    """The index of the completion that carries the final answer (the rules of :func:`choose_answer`): ``best``, the
    best-scored completion that has an answer (ties: the earlier); ``majority`` / ``weighted``, the first completion
    of the winning group of equivalent answers. None when no completion has an answer.

    Refuses an unknown rule and scores of another length.
    """
    if rule not in ANSWER_RULES:
        raise TTScaleError(f"answer rule {rule!r} is unknown; use one of {', '.join(ANSWER_RULES)}")
    if len(scores) != len(answers):
        raise TTScaleError(f"choose_answer: {len(scores)} scores for {len(answers)} answers; give one score per completion")
    if not answers:
        return None
    if rule != "majority" and all(s is None for s in scores):
        rule = "majority"
    if rule == "best":
        answered = [i for i, a in enumerate(answers) if a]
        return min(answered, key=lambda i: (-_rank(scores[i]), i)) if answered else None
    weights = None if rule == "majority" else [max(_rank(s), 0.0) for s in scores]
    groups = group_answers(list(answers), weights)
    return groups[0].members[0] if groups else None


def choose_answer(answers: Sequence[str | None], scores: Sequence[float | None], rule: str) -> str | None:
    """The final answer among completions: ``best`` (the answer of the best-scored completion that has one),
    ``majority`` (most frequent equivalent answer) or ``weighted`` (largest sum of scores per equivalent answer).

    Completions without an extractable answer never win (a small model often stops short of one). Without any
    score, ``best`` and ``weighted`` fall back to ``majority``. Returns None when no completion has an answer.
    Refuses an unknown rule and scores of another length (see :func:`choose_index`, which picks the completion).
    """
    i = choose_index(answers, scores, rule)
    return None if i is None else answers[i]


def votes(answers: Sequence[str | None], scores: Sequence[float | None]) -> dict[str, str | None]:
    """The answer each rule would pick, for reporting next to the strategy's own choice."""
    return {rule: choose_answer(answers, scores, rule) for rule in ANSWER_RULES}


def outcome(answers: Sequence[str | None], scores: Sequence[float | None], rule: str) -> dict:
    """What a finished search reports about its completions (indices into ``answers``):

    ``answer`` and ``chosen``: the final answer under ``rule`` and the completion carrying it (:func:`choose_index`);
    with no answer anywhere, ``chosen`` is the best-scored completion (None when there are none). ``votes``: the
    answer each rule would pick (:func:`votes`). ``answers``: one entry per group of equivalent answers, grouped as
    voting groups them, best first: ``{"answer", "count", "weight", "best", "members", "picked_by"}`` (``weight`` is
    weighted voting's: the sum of the members' scores, a negative or missing score counting 0; ``best`` is the best
    member score or None; ``picked_by``, the rules whose pick is in the group), then the completions without an answer as one entry whose answer is None.

    Refuses what :func:`choose_index` refuses.
    """
    first = choose_index(answers, scores, rule)  # checks the rule and the lengths first
    picked = {r: first if r == rule else choose_index(answers, scores, r) for r in ANSWER_RULES}
    chosen = first
    if chosen is None and answers:
        chosen = min(range(len(answers)), key=lambda i: (-_rank(scores[i]), i))
    groups = group_answers(list(answers), [max(_rank(s), 0.0) for s in scores])
    entries = [{"answer": g.answer, "count": g.count, "weight": g.weight, "best": _best(scores, g.members),
                "members": list(g.members), "picked_by": [r for r, i in picked.items() if i in g.members]} for g in groups]
    grouped = {i for g in groups for i in g.members}
    rest = [i for i in range(len(answers)) if i not in grouped]
    if rest:
        entries.append({"answer": None, "count": len(rest), "weight": sum(max(_rank(scores[i]), 0.0) for i in rest),
                        "best": _best(scores, rest), "members": rest, "picked_by": []})
    return {"answer": None if first is None else answers[first], "chosen": chosen,
            "votes": {r: None if i is None else answers[i] for r, i in picked.items()}, "answers": entries}


def _best(scores: Sequence[float | None], members: Sequence[int]) -> float | None:
    """The best real score among ``members``, or None when none has one."""
    real = [scores[i] for i in members if scores[i] is not None and scores[i] == scores[i]]
    return max(real) if real else None
