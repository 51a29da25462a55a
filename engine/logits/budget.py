"""s1 budget forcing as one ``LogitsProcessor``: min/max thinking budgets inside a single ``generate`` call.

The decisions are plain Python: each row is a :class:`engine.logits.budget_state.BudgetMachine` (its module
docstring lists the rules). This processor only does the tensor work, once per step:

    1. observe   the token each row received last step (and its probability, when the trace or sampling needs it)
    2. ask       which rows may end thinking now (``needs_end_check``); only if any does, compute for the batch
                 whether the sampler *would* end (:func:`end_checks`)
    3. decide    each row's machine returns an :class:`Action`: force a token, block the end tokens, or nothing
    4. apply     one masked copy of the scores (:func:`apply_actions`)

"Would end" is decided as the sampler would decide it: under greedy, the argmax is an end token; under sampling,
a uniform draw (from the processor's own seeded ``torch.Generator``) falls below P(end) of the final (warped)
distribution, then the end token itself is drawn among the end tokens. Masking the end tokens otherwise gives the
same distribution as s1's "sample, and if it stopped, append Wait and call again" (REFERENCE §1) without a second
call or a re-prefill. The end tokens are the first token of the end-of-thinking delimiter, EOS and the end-of-turn
token (:attr:`BudgetTokens.end_set`), shared by every row.

Every row may carry its own :class:`BudgetConfig` (and :class:`BudgetTokens`): pass lists, one per row.
With no budget at all the processor only watches (phase tracking, trace), so the output equals plain ``generate``.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from engine.errors import TTScaleError
from engine.logits.budget_state import (
    ANSWER,
    ANSWER_PREFIX,
    BLOCK_END,
    DELIMITER,
    DONE,
    END,
    NOTHING,
    THINKING,
    Action,
    BudgetConfig,
    BudgetMachine,
    BudgetTokens,
    EndCheck,
    Forced,
    RowState,
)

__all__ = ["ANSWER", "ANSWER_PREFIX", "BLOCK_END", "DELIMITER", "END", "DONE", "NOTHING", "THINKING", "Action", "BudgetConfig",
           "BudgetForcingProcessor",
           "BudgetMachine", "BudgetTokens", "EndCheck", "Forced", "RowState", "apply_actions", "end_checks"]


def entropy(scores: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """(B,) entropy in nats of ``softmax(scores)``; tokens a warper removed (-inf) count as probability 0."""
    logp = scores.float() - lse[:, None]                                                   # (B, V)
    p = logp.exp()
    return -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)


def end_checks(scores: torch.Tensor, lse: torch.Tensor | None, end_index: torch.Tensor, greedy: bool,
               generator: torch.Generator | None) -> list[EndCheck]:
    """Per row of (B, V) final ``scores``: would the sampler end thinking now, with which end token, and P(end).

    ``lse``: (B,) logsumexp of the scores, or None (greedy only; then computed only if some row would end).
    ``end_index``: (E,) end-token ids. Sampling draws B uniforms and B end tokens from ``generator``.
    """
    end_scores = scores.float().index_select(-1, end_index)                              # (B, E)
    if greedy:
        attempt = torch.isin(scores.argmax(-1), end_index)                               # (B,)
        which = end_scores.argmax(-1)
        if lse is None:  # no trace: P(end) is only reported at attempts, so normalise only then
            lse = torch.logsumexp(scores.float(), dim=-1) if bool(attempt.any()) else torch.full_like(attempt, float("inf"), dtype=torch.float)
        p_end = (end_scores - lse[:, None]).exp().sum(-1)                                 # (B,)
    else:
        end_probs = (end_scores - lse[:, None]).exp()                                     # (B, E)
        p_end = end_probs.sum(-1)                                                         # (B,)
        u = torch.rand(scores.shape[0], generator=generator, device=scores.device)
        # p_end ~ 1 means nothing else survived the warpers: ending is then the only draw possible.
        attempt = (u < p_end) | (p_end > 1 - 1e-6)
        weights = torch.where(end_probs.sum(-1, keepdim=True) > 0, end_probs, torch.ones_like(end_probs))
        which = torch.multinomial(weights, 1, generator=generator).squeeze(-1)
    end_tok = end_index[which]
    rows = torch.stack([attempt.long(), end_tok.long()], -1).tolist()
    return [EndCheck(bool(a), int(t), float(p)) for (a, t), p in zip(rows, p_end.tolist())]


def apply_actions(scores: torch.Tensor, actions: list[Action], end_index: torch.Tensor) -> torch.Tensor:
    """(B, V) scores -> (B, V) scores with each row's action applied: a forced token keeps only that token
    (score 0, the rest -inf), a block sets the end tokens to -inf. Returns ``scores`` itself when nothing applies."""
    forced = [i for i, a in enumerate(actions) if a.force is not None]
    blocked = [i for i, a in enumerate(actions) if a.force is None and a.block_end]
    if not forced and not blocked:
        return scores
    out = scores.clone()  # never edit scores in place: it aliases output_logits (REFERENCE §5)
    if forced:
        r = torch.tensor(forced, device=scores.device)
        out[r] = float("-inf")
        out[r, torch.tensor([actions[i].force for i in forced], device=scores.device)] = 0.0
    if blocked:
        r = torch.tensor(blocked, device=scores.device)
        out[r[:, None], end_index[None, :]] = float("-inf")
    return out


def _per_row(value, kind: type, name: str) -> list | None:
    """A list of ``kind`` (checked), or None for a single value."""
    if isinstance(value, kind):
        return None
    if not isinstance(value, (list, tuple)):
        raise TTScaleError(f"{name} must be a {kind.__name__} or a list of them (one per row), got {type(value).__name__}")
    values = list(value)
    if not values:
        raise TTScaleError(f"{name} is an empty list; pass one {kind.__name__} per row, or a single one for every row")
    for i, v in enumerate(values):
        if not isinstance(v, kind):
            raise TTScaleError(f"{name}[{i}] must be a {kind.__name__}, got {type(v).__name__}")
    return values


class BudgetForcingProcessor(LogitsProcessor):
    """Enforces a :class:`BudgetConfig` row by row inside one ``model.generate`` call.

    ``budget`` and ``tokens`` are each one value for every row or a list with one per row (each row may then have
    its own limits, continuations and final-answer string). Place it last in ``logits_processor``, after the
    sampling warpers from ``engine.logits.warpers.warpers(sampling)``, and call ``generate`` with transformers' own warpers off
    (``SamplingConfig.generate_kwargs()``). Call :meth:`finish` with the returned sequences to observe the last
    token. One instance serves one ``generate`` call.

    Example::

        >>> proc = BudgetForcingProcessor(tokens, BudgetConfig(min_thinking_tokens=64, max_thinking_tokens=256))
        >>> out = model.generate(ids, attention_mask=mask, logits_processor=LogitsProcessorList([proc]),
        ...                      eos_token_id=list(tokens.end_ids), do_sample=False, max_new_tokens=400)
        >>> states = proc.finish(out)

    Refuses (:class:`TTScaleError`) per-row lists of different lengths, list items of the wrong type, rows whose
    end tokens differ, and, at the first call, a list whose length is not the batch size. Budgets and strings are
    validated by :class:`BudgetConfig` and :class:`BudgetTokens`.
    """

    def __init__(self, tokens: BudgetTokens | list[BudgetTokens], budget: BudgetConfig | list[BudgetConfig],
                 greedy: bool = True, seed: int | None = None, trace_top_k: int = 0):
        self.tokens, self.budget = tokens, budget
        self._budgets = _per_row(budget, BudgetConfig, "budget")
        self._tokens = _per_row(tokens, BudgetTokens, "tokens")
        if self._budgets is not None and self._tokens is not None and len(self._budgets) != len(self._tokens):
            raise TTScaleError(f"budget has {len(self._budgets)} rows but tokens has {len(self._tokens)}; "
                               "pass one BudgetTokens per BudgetConfig")
        first = self._tokens[0] if self._tokens is not None else tokens
        self._end_list = list(first.end_set)
        for i, t in enumerate(self._tokens or ()):
            if set(t.end_set) != set(self._end_list):
                raise TTScaleError(f"tokens[{i}] ends thinking with ids {list(t.end_set)} but tokens[0] with "
                                   f"{self._end_list}; rows of one batch must share the delimiter, EOS and end-of-turn")
        self.greedy = greedy
        self.trace_top_k = trace_top_k
        self.seed = seed
        self.machines: list[BudgetMachine] | None = None
        self.prompt_len = 0
        self.calls = 0
        self._end_index = None          # (E,) tensor of end-token ids (delimiter start, EOS, end-of-turn)
        self._gen = None
        self._prev = None               # (scores, lse) of the last call, to read chosen-token probabilities
        self.top: list = []             # per call: (values, indices) of the top-k, for the trace
        self.entropy: list = []         # per call: (B,) entropy in nats of the distribution, for the trace

    @property
    def states(self) -> list[RowState] | None:
        """Each row's :class:`RowState` (None before the first call)."""
        return None if self.machines is None else [m.state for m in self.machines]

    def _start(self, input_ids: torch.Tensor, scores: torch.Tensor) -> None:
        B = scores.shape[0]
        for name, rows in (("budget", self._budgets), ("tokens", self._tokens)):
            if rows is not None and len(rows) != B:
                raise TTScaleError(f"{name} lists {len(rows)} rows but the batch has {B}; pass one per row "
                                   "(in prompt order), or a single one for every row")
        budgets = self._budgets or [self.budget] * B
        tokens = self._tokens or [self.tokens] * B
        self.machines = [BudgetMachine(b, t) for b, t in zip(budgets, tokens)]
        self.prompt_len = input_ids.shape[1]
        self._end_index = torch.tensor(self._end_list, device=scores.device)
        if not self.greedy:
            self._gen = torch.Generator(device=scores.device)
            self._gen.manual_seed(self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,))))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (B, L) prompt (left-padded) + generated so far; scores: (B, V) after the warpers.
        if self.machines is None:
            self._start(input_ids, scores)
        else:
            self._observe_last(input_ids[:, -1])
        self.calls += 1
        # Full-vocabulary normalisers cost a pass over (B, V) each: only the trace and sampled P(end) need them.
        lse = torch.logsumexp(scores.float(), dim=-1) if self.trace_top_k or not self.greedy else None  # (B,)
        self._prev = (scores, lse)
        if self.trace_top_k:
            vals, idx = torch.topk(scores.float(), self.trace_top_k, dim=-1)                # (B, k)
            self.top.append(((vals - lse[:, None]).exp().cpu(), idx.cpu()))
            self.entropy.append(entropy(scores, lse).cpu())
        asks = [m.needs_end_check() for m in self.machines]
        checks = end_checks(scores, lse, self._end_index, self.greedy, self._gen) if any(asks) else None
        actions = [m.decide(checks[i] if ask else None) for i, (m, ask) in enumerate(zip(self.machines, asks))]
        return apply_actions(scores, actions, self._end_index)

    def _observe_last(self, last: torch.Tensor) -> None:
        scores, lse = self._prev
        if lse is None:
            probs = [None] * last.shape[0]
        else:
            probs = (scores.float().gather(-1, last[:, None]).squeeze(-1) - lse).exp().tolist()
        for m, tok, p in zip(self.machines, last.tolist(), probs):
            m.observe(tok, p)

    def finish(self, sequences: torch.LongTensor) -> list[RowState]:
        """Observe the final token of each row of ``generate``'s output and close unfinished rows as ``length``."""
        if self.machines is None:
            return []
        last = sequences[:, -1] if sequences.shape[1] - self.prompt_len == self.calls else None
        return self.finish_last(last)

    def finish_last(self, last_tokens: torch.LongTensor | None) -> list[RowState]:
        """For callers running their own decode loop: observe the (B,) tokens chosen after the last call, if any,
        close unfinished rows as ``length``, and return the row states. In such a loop call the processor as
        ``proc(last_tokens[:, None], scores)``: it reads only the last column of ``input_ids``."""
        if self.machines is None:
            return []
        if last_tokens is not None:
            self._observe_last(last_tokens)
        return [m.finish() for m in self.machines]

    def row_phase(self, row: int) -> str:
        """The phase of one row now: ``thinking``, ``answer`` or ``done``."""
        return self.machines[row].phase if self.machines is not None else THINKING
