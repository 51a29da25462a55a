"""Expansion: extend many branches by whole steps in one decode loop over the prefix-sharing KV cache.

Every row is one branch of :class:`engine.kv_cache.KVCacheManager` (any problem, any depth). Each iteration is one
call of :meth:`Expander.step` (``expand`` loops over it; a scheduler may call it directly and add rows between calls):

    1. choose   logits of every active row (B, V) -> warpers (sampled rows) -> budget forcing (rows that have it)
                -> argmax (greedy rows) or one multinomial draw per row from a shared torch.Generator
    2. cut      the token ends the row's step when it is an end token (``stop``), when the step's text now holds
                the delimiter after some non-blank text (``delimiter``; matched as a string, because models
                write ``\\n\\n`` both as one token and as two, REFERENCE §5), or when the step has
                ``max_step_tokens`` tokens (``cap``; on the last allowed step: ``length``)
    3. decode   one forward for every row whose branch goes on, the new token appended to its branch

A step always ends on a token boundary and tokens are never re-tokenised, so the concatenated steps of a branch
are exactly the tokens sampled: greedy expansion equals greedy generation. Tokens that end a branch (an end token,
the last step's cap) are recorded but never run through the model: nothing would read their keys.

The last allowed step (``max_steps``) ignores the delimiter and runs to an end token or its cap, like
search-and-learn's last iteration (REFERENCE §3).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine.kv_cache import Branch, KVCacheManager
from engine.logits.budget import BudgetConfig, BudgetMachine, BudgetTokens, RowState, apply_actions, end_checks
from engine.logits.sampling import SamplingConfig
from engine.logits.warpers import warpers

DELIMITER, CAP, STOP, LENGTH = "delimiter", "cap", "stop", "length"


@dataclass
class Step:
    """One generated step: its tokens (an end token included when it ended on one), its text, and why it ended."""

    tokens: list[int]
    text: str
    end: str

    @property
    def finished(self) -> bool:
        """True when the branch ends with this step (``stop`` or ``length``)."""
        return self.end in (STOP, LENGTH)


class BranchBudget:
    """Budget forcing for one branch: a :class:`BudgetMachine` plus the one-row tensor work, forked with the branch.

    Search branches are forked and pruned between tokens, so each branch carries its own machine; a fork copies
    the row state (thinking count, queued forced tokens). Sampled branches decide end attempts with a
    ``torch.Generator`` created (from ``seed``) at the branch's first call and shared by everything forked from it
    afterwards. Call it with the branch's (1, V) warped scores before choosing, then :meth:`chose` with the chosen
    token. Refuses nothing itself: :class:`BudgetConfig` and :class:`BudgetTokens` validate the budget and its strings.
    """

    def __init__(self, tokens: BudgetTokens, budget: BudgetConfig, greedy: bool, seed: int | None):
        self.machine = BudgetMachine(budget, tokens)
        self.greedy, self.seed = greedy, seed
        self._end_index: torch.Tensor | None = None  # (E,) end-token ids; set at the first call
        self._gen: torch.Generator | None = None
        self._last: int | None = None   # chosen at the last call, observed by the machine at the next one

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        """(1, V) scores -> (1, V) scores with this branch's forced token or blocked endings applied."""
        if self._end_index is None:
            self._end_index = torch.tensor(list(self.machine.tokens.end_set), device=scores.device)
            if not self.greedy:
                self._gen = torch.Generator(device=scores.device)
                self._gen.manual_seed(self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,))))
        elif self._last is not None:
            self.machine.observe(self._last)
        check = None
        if self.machine.needs_end_check():
            lse = None if self.greedy else torch.logsumexp(scores.float(), dim=-1)  # (1,)
            [check] = end_checks(scores, lse, self._end_index, self.greedy, self._gen)
        return apply_actions(scores, [self.machine.decide(check)], self._end_index)

    def chose(self, token: int) -> None:
        """Record the token the branch got, for the machine to observe at the next call."""
        self._last = token

    def fork(self, seed: int | None = None, greedy: bool = False) -> BranchBudget:
        """A copy that continues independently. ``seed`` seeds a copy that has not run yet (so siblings forked from
        a fresh root draw differently); ``greedy=True`` makes it decide end attempts by argmax (lookahead rows)."""
        new = copy.copy(self)
        new.machine = self.machine.fork()
        if seed is not None and self._end_index is None:
            new.seed = seed
        if greedy:
            new.greedy = True
        return new

    def state(self) -> RowState | None:
        """The row state after observing the last token (finish reason ``length`` if it has not ended); None if unused."""
        if self._end_index is None:
            return None
        probe = self.machine.fork()
        if self._last is not None:
            probe.observe(self._last)
        return probe.finish()


@dataclass
class Row:
    """One branch to extend in :meth:`Expander.expand` (or token by token with :meth:`Expander.step`).

    ``depth``: steps the branch already has. ``steps_wanted``: steps to generate now (None: until it ends).
    ``greedy``: argmax instead of sampling. ``tag``: the caller's bookkeeping. Filled in by ``expand``: ``steps``
    and ``computed`` (tokens this row ran through the model). ``budget``: the branch's own budget forcing, if any.
    """

    branch: Branch
    depth: int = 0
    steps_wanted: int | None = 1
    greedy: bool = False
    budget: BranchBudget | None = None
    tag: object = None
    steps: list[Step] = field(default_factory=list)
    computed: int = 0
    _current: list[int] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """True once the branch ended or produced the steps it was asked for."""
        return bool(self.steps) and (self.steps[-1].finished or (self.steps_wanted is not None and len(self.steps) >= self.steps_wanted))


class Expander:
    """Decodes rows step by step over one :class:`KVCacheManager`.

    ``end_ids`` end a branch; ``delimiter`` ends a step; ``max_steps`` / ``max_step_tokens`` bound depth and step
    length; ``sampling`` and ``generator`` decide sampled rows. Refuses nothing itself: :class:`SearchConfig` and
    :class:`SamplingConfig` validate the settings.
    """

    def __init__(self, manager: KVCacheManager, tokenizer, end_ids, delimiter: str, max_steps: int, max_step_tokens: int,
                 sampling: SamplingConfig, generator: torch.Generator):
        self.manager, self.tokenizer = manager, tokenizer
        self.end_ids = frozenset(int(t) for t in end_ids)
        self.delimiter, self.max_steps, self.max_step_tokens = delimiter, max_steps, max_step_tokens
        self.warpers = warpers(sampling)
        self.generator = generator
        self._window = len(delimiter) + 2  # tokens whose text must hold a delimiter that the newest token completed

    def text(self, tokens: list[int]) -> str:
        """Text of generated tokens, end tokens left out."""
        return self.tokenizer.decode([t for t in tokens if t not in self.end_ids], skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)

    def expand(self, rows: list[Row], on_token: Callable[[int], None] | None = None) -> None:
        """Generate until every row is done (a loop over :meth:`step`); fills ``row.steps`` and ``row.computed``.
        ``on_token(k)`` after each iteration that chose k tokens (for a progress bar)."""
        active = [r for r in rows if not r.done]
        while active:
            n = len(active)
            active = self.step(active)
            if on_token is not None:
                on_token(n)

    def step(self, rows: list[Row]) -> list[Row]:
        """Advance every row that is not done by exactly one token and return the rows still not done, in order.

        One iteration of the loop in the module docstring: choose a token per row, cut the rows' steps, then one
        batched ``manager.decode`` for the rows whose branch goes on. An outside scheduler may call it repeatedly
        and add rows between calls (a new row only needs a live branch whose ``logits`` are current, e.g. from
        ``manager.prefill`` or ``manager.fork``); rows are independent, so greedy rows get the same tokens whatever
        else shares the step. Refuses (through the manager) dead branches and a branch listed twice.
        """
        active = [r for r in rows if not r.done]
        if not active:
            return []
        logits = torch.stack([r.branch.logits for r in active])  # (B, V)
        chosen = self._choose(active, logits)
        go_on, feed, still = [], [], []
        for r, t in zip(active, chosen):
            r._current.append(t)
            if r.budget is not None:
                r.budget.chose(t)
            end = self._cut(r, t)
            if end is not None:
                r.steps.append(Step(r._current, self.text(r._current), end))
                r._current = []
            if end not in (STOP, LENGTH):
                go_on.append(r)
                feed.append(t)
            if not r.done:
                still.append(r)
        if go_on:
            self.manager.decode([r.branch for r in go_on], feed)
            for r in go_on:
                r.computed += 1
        return still

    def _cut(self, row: Row, token: int) -> str | None:
        """Why the row's current step ends at ``token``, or None when it goes on."""
        if token in self.end_ids:
            return STOP
        last = row.depth + len(row.steps) + 1 >= self.max_steps
        if not last and self._has_delimiter(row._current):
            return DELIMITER
        if len(row._current) >= self.max_step_tokens:
            return LENGTH if last else CAP
        return None

    def _has_delimiter(self, current: list[int]) -> bool:
        # Cheap test on the newest tokens first; then the whole step, where blank text before the delimiter
        # (a step that opens with a blank line) does not count.
        if self.delimiter not in self.text(current[-self._window:]):
            return False
        return self.delimiter in self.text(current).lstrip()

    def _choose(self, rows: list[Row], logits: torch.Tensor) -> list[int]:
        """(B, V) logits -> one token per row (warpers, then budget forcing, then argmax or a draw)."""
        scores = logits.float()
        sampled = [i for i, r in enumerate(rows) if not r.greedy]
        if sampled and self.warpers:
            idx = torch.tensor(sampled, device=scores.device)
            part = scores.index_select(0, idx)
            dummy = torch.zeros((len(sampled), 1), dtype=torch.long, device=scores.device)  # warpers ignore input_ids
            for w in self.warpers:
                part = w(dummy, part)
            scores = scores.index_copy(0, idx, part)
        if any(r.budget is not None for r in rows):
            scores = torch.cat([r.budget(scores[i: i + 1]) if r.budget is not None else scores[i: i + 1]
                                for i, r in enumerate(rows)])
        out = scores.argmax(-1)  # (B,)
        if sampled:
            idx = torch.tensor(sampled, device=scores.device)
            probs = torch.softmax(scores.index_select(0, idx), dim=-1)
            draws = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
            out = out.index_copy(0, idx, draws)
        return out.tolist()
