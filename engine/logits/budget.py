"""s1 budget forcing as one ``LogitsProcessor``: min/max thinking budgets inside a single ``generate`` call.

Each row of the batch carries a :class:`RowState`. At every step the processor first *observes* the token the
row received last step (counting it as thinking, delimiter or answer), then *decides* what this step may produce:

    queue non-empty            -> force the queue's head        (multi-token injections: "Wait", delimiter, "Final Answer:")
    thinking, count >= max     -> queue cap text, force it     ("\\n<|im_start|>answer\\nFinal Answer:", REFERENCE §1)
    thinking, model would end  -> attempt to end thinking:
        ignores left / count < min   -> replace by the continuation ("Wait"; a list rotates)
        otherwise                    -> let it end: force the rest of the delimiter
    thinking, model would not  -> mask the end tokens, so the sampler draws from the rest
    answer, count >= max_answer -> force end of turn

"Would end" is decided as the sampler would decide it: under greedy, the argmax is an end token; under sampling,
a uniform draw falls below P(end) of the final (warped) distribution, then the end token itself is drawn from the
end tokens. Masking the end tokens otherwise gives the same distribution as s1's "sample, and if it stopped,
append Wait and call again" (REFERENCE §1) without a second call or a re-prefill. The end tokens are the first
token of the end-of-thinking delimiter, EOS and the end-of-turn token; a multi-token delimiter therefore ends
thinking as a unit once its first token is chosen.

With no budget at all the processor only watches (phase tracking, trace), so the output equals plain ``generate``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from engine.errors import TTScaleError
from engine.formats import ThinkingFormat, encode_text, end_of_turn_ids

THINKING, ANSWER, DONE = "thinking", "answer", "done"


@dataclass(frozen=True)
class BudgetConfig:
    """Thinking and answer budgets in tokens (REFERENCE §1).

    ``min_thinking_tokens``: attempts to end thinking below this count are replaced by a continuation.
    ``max_thinking_tokens``: at this count the end-of-thinking delimiter and ``final_answer_str`` are forced.
    ``num_ignore``: the first K attempts to end thinking are replaced whatever the count (s1's thinking_n_ignore).
    ``ignore_strs``: continuation strings, used in rotation ("Wait" by default).
    ``max_answer_tokens``: the answer phase is closed with end-of-turn at this count.
    ``answer_on_end_of_turn``: when a budget is active and the model ends its turn inside thinking, force the
    delimiter so an answer follows (what s1's evaluation does) instead of stopping without one.
    """

    min_thinking_tokens: int = 0
    max_thinking_tokens: int | None = None
    num_ignore: int = 0
    ignore_strs: tuple[str, ...] = ("Wait",)
    max_answer_tokens: int | None = None
    final_answer_str: str = "Final Answer:"
    answer_on_end_of_turn: bool = True

    def __post_init__(self):
        if isinstance(self.ignore_strs, str):
            object.__setattr__(self, "ignore_strs", (self.ignore_strs,))
        else:
            object.__setattr__(self, "ignore_strs", tuple(self.ignore_strs))
        for name in ("min_thinking_tokens", "num_ignore"):
            if getattr(self, name) < 0:
                raise TTScaleError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("max_thinking_tokens", "max_answer_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TTScaleError(f"--{name.replace('_', '-')} must be >= 1 (or unset for no cap), got {value}")
        if self.max_thinking_tokens is not None and self.min_thinking_tokens > self.max_thinking_tokens:
            raise TTScaleError(f"--min-thinking-tokens ({self.min_thinking_tokens}) is larger than --max-thinking-tokens "
                               f"({self.max_thinking_tokens}); make the minimum at most the maximum")
        if not self.ignore_strs or any(not s for s in self.ignore_strs):
            raise TTScaleError("--ignore-str must be a non-empty string (give it once per continuation to rotate)")

    @property
    def forces_thinking(self) -> bool:
        """True when any thinking budget is set; otherwise the processor only watches."""
        return self.min_thinking_tokens > 0 or self.max_thinking_tokens is not None or self.num_ignore > 0


@dataclass(frozen=True)
class BudgetTokens:
    """A :class:`BudgetConfig` and :class:`ThinkingFormat` turned into token ids by one tokenizer."""

    think_end: tuple[int, ...]
    cap: tuple[int, ...]            # cap_prefix + delimiter, forced at the thinking cap
    answer_prefix: tuple[int, ...]  # answer_sep + final answer string, forced after the capped delimiter
    continuations: tuple[tuple[int, ...], ...]
    end_ids: tuple[int, ...]        # EOS and end-of-turn ids

    @classmethod
    def build(cls, tokenizer, fmt: ThinkingFormat, budget: BudgetConfig, model_eos=None) -> "BudgetTokens":
        """Encode every string through ``tokenizer``; refuses strings it cannot represent (see ``encode_text``)."""
        think_end = encode_text(tokenizer, fmt.think_end, "the end-of-thinking delimiter (--think-end)")
        cap = (encode_text(tokenizer, fmt.cap_prefix, "the cap prefix") if fmt.cap_prefix else ()) + think_end
        prefix_text = fmt.answer_sep + budget.final_answer_str
        answer_prefix = encode_text(tokenizer, prefix_text, "the final-answer string (--final-answer-str)") if prefix_text else ()
        conts = tuple(encode_text(tokenizer, s, "--ignore-str") for s in budget.ignore_strs)
        end_ids = end_of_turn_ids(tokenizer, model_eos)
        if not end_ids:
            raise TTScaleError("this tokenizer has no EOS or end-of-turn token, so the end of an answer cannot be detected")
        return cls(think_end, cap, answer_prefix, conts, end_ids)


@dataclass
class Forced:
    """One queued token: its id, why it is forced, what it counts as, and whether it closes thinking."""

    token: int
    reason: str
    category: str
    closes_thinking: bool = False


@dataclass
class RowState:
    """Everything the processor knows about one row; the engine reads it after ``generate`` returns."""

    phase: str = THINKING
    thinking_tokens: int = 0
    answer_tokens: int = 0
    injections: int = 0
    ignores_used: int = 0
    forced_stop: bool = False
    closing: bool = False                     # delimiter forcing has begun
    finish_reason: str | None = None
    queue: deque = field(default_factory=deque)
    pending: Forced | None = None             # decision taken for the token chosen at the last call
    tokens: list = field(default_factory=list)       # (id, source, reason, category) per observed token
    suppressed: dict = field(default_factory=dict)   # token index -> {"token", "p_end"} at each replaced ending


class BudgetForcingProcessor(LogitsProcessor):
    """Enforces a :class:`BudgetConfig` row by row inside one ``model.generate`` call.

    Place it last in ``logits_processor``, after the sampling warpers from ``SamplingConfig.warpers()``, and call
    ``generate`` with transformers' own warpers off (``SamplingConfig.generate_kwargs()``). Call :meth:`finish`
    with the returned sequences to observe the last token. One instance serves one ``generate`` call.

    Example::

        >>> proc = BudgetForcingProcessor(tokens, BudgetConfig(min_thinking_tokens=64, max_thinking_tokens=256))
        >>> out = model.generate(ids, attention_mask=mask, logits_processor=LogitsProcessorList([proc]),
        ...                      eos_token_id=list(tokens.end_ids), do_sample=False, max_new_tokens=400)
        >>> states = proc.finish(out)

    Refuses nothing at call time: configurations are validated by :class:`BudgetConfig` and :class:`BudgetTokens`.
    """

    def __init__(self, tokens: BudgetTokens, budget: BudgetConfig, greedy: bool = True, seed: int | None = None,
                 trace_top_k: int = 0):
        self.tokens = tokens
        self.budget = budget
        self.greedy = greedy
        self.trace_top_k = trace_top_k
        self.seed = seed
        self.states: list[RowState] | None = None
        self.prompt_len = 0
        self.calls = 0
        self._end_index = None          # (E,) tensor of end-token ids (delimiter start, EOS, end-of-turn)
        self._end_list = list(dict.fromkeys((tokens.think_end[0],) + tokens.end_ids))
        self._gen = None
        self._prev = None               # (scores, lse) of the last call, to read chosen-token probabilities
        self.top: list = []             # per call: (values, indices) of the top-k, for the trace

    # ---- observing -------------------------------------------------------------------------------------------
    def _observe(self, st: RowState, tok: int, prob: float | None) -> None:
        if st.phase == DONE:
            return
        decision, st.pending = st.pending, None
        if decision is None:
            category = THINKING if st.phase == THINKING else ANSWER
            decision = Forced(tok, None, category)
            source = "sampled"
        else:
            source = "forced" if decision.reason not in (None, "model_end") else "sampled"
        category = decision.category
        if tok in self.tokens.end_ids and category in (THINKING, ANSWER):
            category = "end"
        st.tokens.append((tok, source, decision.reason, category, st.phase, prob))
        if category == THINKING:
            st.thinking_tokens += 1
        elif category == ANSWER:
            st.answer_tokens += 1
        if decision.closes_thinking:
            st.phase = ANSWER
        elif st.phase == THINKING and not self.budget.forces_thinking:
            self._watch_for_delimiter(st)
        if category == "end":
            st.finish_reason = st.finish_reason or ("stop" if st.phase == ANSWER else "stop_in_thinking")
            st.phase = DONE

    def _watch_for_delimiter(self, st: RowState) -> None:
        """Passive mode: the model wrote the whole delimiter itself; re-label those tokens and switch phase."""
        n = len(self.tokens.think_end)
        tail = tuple(t[0] for t in st.tokens[-n:])
        if len(st.tokens) >= n and tail == self.tokens.think_end:
            for i in range(len(st.tokens) - n, len(st.tokens)):
                tok, source, reason, _, _, prob = st.tokens[i]
                st.tokens[i] = (tok, source, reason, "delimiter", THINKING, prob)
            st.thinking_tokens -= n
            st.phase = ANSWER

    # ---- deciding --------------------------------------------------------------------------------------------
    def _queue(self, st: RowState, ids, reason: str, category: str, closes_at_end: bool = False) -> None:
        for i, t in enumerate(ids):
            st.queue.append(Forced(t, reason, category, closes_at_end and i == len(ids) - 1))

    def _end_attempt(self, st: RowState, end_tok: int, p_end: float, index: int) -> None:
        b = self.budget
        if st.ignores_used < b.num_ignore or st.thinking_tokens < b.min_thinking_tokens:
            reason = "ignore" if st.ignores_used < b.num_ignore else "min_budget"
            st.ignores_used += reason == "ignore"
            cont = self.tokens.continuations[st.injections % len(self.tokens.continuations)]
            st.injections += 1
            st.suppressed[index] = {"token": end_tok, "p_end": p_end}
            self._queue(st, cont, reason, THINKING)
            return
        delim = self.tokens.think_end
        st.closing = True
        if end_tok == delim[0]:
            # The model chose the delimiter itself: its first token is sampled, the rest completes the delimiter.
            st.pending = Forced(end_tok, "model_end", "delimiter", closes_thinking=len(delim) == 1)
            self._queue(st, delim[1:], "delimiter", "delimiter", closes_at_end=True)
        elif b.answer_on_end_of_turn:
            self._queue(st, delim, "end_of_turn", "delimiter", closes_at_end=True)
        else:
            st.pending = Forced(end_tok, None, "end")

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (B, L) prompt (left-padded) + generated so far; scores: (B, V) after the warpers.
        B = scores.shape[0]
        if self.states is None:
            self.states = [RowState() for _ in range(B)]
            self.prompt_len = input_ids.shape[1]
            self._end_index = torch.tensor(self._end_list, device=scores.device)
            if not self.greedy:
                self._gen = torch.Generator(device=scores.device)
                self._gen.manual_seed(self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,))))
        else:
            self._observe_last(input_ids[:, -1])
        self.calls += 1
        # Full-vocabulary normalisers cost a pass over (B, V) each: only the trace and sampled P(end) need them.
        lse = torch.logsumexp(scores.float(), dim=-1) if self.trace_top_k or not self.greedy else None  # (B,)
        self._prev = (scores, lse)
        if self.trace_top_k:
            vals, idx = torch.topk(scores.float(), self.trace_top_k, dim=-1)                # (B, k)
            self.top.append(((vals - lse[:, None]).exp().cpu(), idx.cpu()))

        forced = [-1] * B
        block_end = [False] * B
        stats = None
        for i, st in enumerate(self.states):
            if st.phase == DONE:
                continue
            if st.phase == THINKING and self.budget.forces_thinking and not st.closing:
                cap = self.budget.max_thinking_tokens
                if cap is not None and st.thinking_tokens >= cap:
                    st.queue.clear()
                    st.forced_stop = st.closing = True
                    self._queue(st, self.tokens.cap, "max_budget", "delimiter", closes_at_end=True)
                    self._queue(st, self.tokens.answer_prefix, "max_budget", ANSWER)
                elif not st.queue:
                    if stats is None:
                        stats = self._end_stats(scores, lse)
                    attempt, end_tok, p_end = stats[i]
                    if attempt:
                        self._end_attempt(st, end_tok, p_end, len(st.tokens))
                    if not st.queue and st.pending is None:
                        block_end[i] = True
            elif st.phase == ANSWER and not st.queue and self.budget.max_answer_tokens is not None \
                    and st.answer_tokens >= self.budget.max_answer_tokens:
                self._queue(st, self.tokens.end_ids[:1], "max_answer", "end")
                st.finish_reason = "max_answer"
            if st.pending is None and st.queue:
                st.pending = st.queue.popleft()
            if st.pending is not None:
                forced[i] = st.pending.token
        return self._apply(scores, forced, block_end)

    def _end_stats(self, scores: torch.Tensor, lse: torch.Tensor) -> list[tuple[bool, int, float]]:
        """Per row: would the sampler end thinking now, with which end token, and P(end) under the final distribution."""
        end_scores = scores.float().index_select(-1, self._end_index)                    # (B, E)
        if self.greedy:
            attempt = torch.isin(scores.argmax(-1), self._end_index)
            which = end_scores.argmax(-1)
            if lse is None:  # no trace: P(end) is only reported at attempts, so normalise only then
                lse = torch.logsumexp(scores.float(), dim=-1) if bool(attempt.any()) else torch.full_like(attempt, float("inf"), dtype=torch.float)
            p_end = (end_scores - lse[:, None]).exp().sum(-1)                             # (B,)
        else:
            end_probs = (end_scores - lse[:, None]).exp()                                 # (B, E)
            p_end = end_probs.sum(-1)                                                     # (B,)
            u = torch.rand(scores.shape[0], generator=self._gen, device=scores.device)
            # p_end ~ 1 means nothing else survived the warpers: ending is then the only draw possible.
            attempt = (u < p_end) | (p_end > 1 - 1e-6)
            weights = torch.where(end_probs.sum(-1, keepdim=True) > 0, end_probs, torch.ones_like(end_probs))
            which = torch.multinomial(weights, 1, generator=self._gen).squeeze(-1)
        end_tok = self._end_index[which]
        rows = torch.stack([attempt.long(), end_tok.long()], -1).tolist()
        return [(bool(a), int(t), float(p)) for (a, t), p in zip(rows, p_end.tolist())]

    def _apply(self, scores: torch.Tensor, forced: list[int], block_end: list[bool]) -> torch.Tensor:
        if all(f < 0 for f in forced) and not any(block_end):
            return scores
        out = scores.clone()  # never edit scores in place: it aliases output_logits (REFERENCE §5)
        rows = [i for i, f in enumerate(forced) if f >= 0]
        if rows:
            r = torch.tensor(rows, device=scores.device)
            out[r] = float("-inf")
            out[r, torch.tensor([forced[i] for i in rows], device=scores.device)] = 0.0
        blocked = [i for i, bl in enumerate(block_end) if bl]
        if blocked:
            r = torch.tensor(blocked, device=scores.device)
            out[r[:, None], self._end_index[None, :]] = float("-inf")
        return out

    def _observe_last(self, last: torch.Tensor) -> None:
        scores, lse = self._prev
        if lse is None:
            probs = [None] * last.shape[0]
        else:
            probs = (scores.float().gather(-1, last[:, None]).squeeze(-1) - lse).exp().tolist()
        for i, (tok, p) in enumerate(zip(last.tolist(), probs)):
            self._observe(self.states[i], tok, p)

    def finish(self, sequences: torch.LongTensor) -> list[RowState]:
        """Observe the final token of each row of ``generate``'s output and close unfinished rows as ``length``."""
        if self.states is None:
            return []
        last = sequences[:, -1] if sequences.shape[1] - self.prompt_len == self.calls else None
        return self.finish_last(last)

    def finish_last(self, last_tokens: torch.LongTensor | None) -> list[RowState]:
        """For callers running their own decode loop (search): observe the (B,) tokens chosen after the last call,
        if any, close unfinished rows as ``length``, and return the row states. In such a loop call the processor
        as ``proc(last_tokens[:, None], scores)``: it reads only the last column of ``input_ids``."""
        if self.states is None:
            return []
        if last_tokens is not None:
            self._observe_last(last_tokens)
        for st in self.states:
            if st.phase != DONE:
                st.finish_reason = "length"
        return self.states

    def row_phase(self, row: int) -> str:
        """The phase of one row now: ``thinking``, ``answer`` or ``done``."""
        return self.states[row].phase if self.states is not None else THINKING
