"""s1 budget forcing for one row, as a plain-Python state machine: no tensors, testable without torch.

A :class:`BudgetMachine` holds one row's :class:`RowState`. The tensor side (``BudgetForcingProcessor`` in
``engine/logits/budget.py``, or a search branch) drives it once per decoding step:

    observe(token, prob)    the token the row received last step: counted as thinking, delimiter, answer or end
    needs_end_check()       True when the row may end thinking now by itself: the driver must then tell
    decide(EndCheck)        whether the sampler would end here (and with which end token, and P(end));
    decide() -> Action      what this step may produce:

    queue non-empty             -> force the queue's head        (multi-token injections: "Wait", delimiter, "Final Answer:")
    thinking, count >= max      -> queue cap text, force it      ("\\n<|im_start|>answer\\nFinal Answer:", REFERENCE §1)
    thinking, model would end   -> an attempt to end thinking:
        ignores left / count < min   -> replace it by the continuation ("Wait"; a list rotates)
        otherwise                    -> let it end: force the rest of the delimiter (end of turn: all of it)
    thinking, model would not   -> block the end tokens, so the sampler draws from the rest
    answer, count >= max_answer -> force end of turn

Counting: ``thinking_tokens`` are the thinking the row got (sampled, plus injected continuations, as s1 counts);
``answer_tokens`` only the model's own answer tokens, which ``max_answer_tokens`` caps exactly; ``forced_tokens`` the
text the budget inserted that is neither (the forced delimiter and the ``final_answer_str`` prefix after a cap).

With no thinking budget (and ``answer_without_budget`` off, the library default) the machine only watches: it re-labels the delimiter once the model wrote it whole and
switches to the answer phase, so the output equals plain generation. Every observed token is recorded in
``RowState.tokens`` with its source (sampled / forced) and reason, for the trace (``engine/trace.py``).

:class:`BudgetConfig` and :class:`BudgetTokens` live here too, so that a budget can be built and checked without torch;
``engine.logits.budget`` re-exports them.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field

from engine.errors import ConfigError, TTScaleError
from engine.formats import ThinkingFormat, encode_text, end_of_turn_ids

THINKING, ANSWER, DONE = "thinking", "answer", "done"
# What a token counts as, besides thinking and answer: the delimiter, the forced answer prefix ("Final Answer:",
# part of the answer text but not of the model's own answer), and end of turn.
DELIMITER, ANSWER_PREFIX, END = "delimiter", "answer_prefix", "end"


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
    ``answer_without_budget``: do that even with no thinking budget (the ``ttscale generate`` default). The machine
    then checks each thinking step as a budget with no minimum and no cap would: an end of turn becomes the
    delimiter, the model's own delimiter is completed, nothing else changes. Off by default, so that a library
    call with no budget equals plain ``generate``.
    """

    min_thinking_tokens: int = field(default=0, metadata={"help": "replace attempts to end thinking below this many tokens"})
    max_thinking_tokens: int | None = field(default=None, metadata={"help": "force the end of thinking at this many tokens"})
    num_ignore: int = field(default=0, metadata={"help": "ignore the first K attempts to end thinking (s1 thinking_n_ignore)"})
    ignore_strs: tuple[str, ...] = field(default=("Wait",), metadata={
        "help": "continuation string; repeat the flag to rotate several", "flag": "--ignore-str", "action": "append"})
    max_answer_tokens: int | None = field(default=None, metadata={"help": "cap on answer tokens"})
    final_answer_str: str = field(default="Final Answer:", metadata={"help": "forced after the delimiter when the cap is hit"})
    answer_on_end_of_turn: bool = field(default=True, metadata={
        "help": "stop when the model ends its turn inside thinking, instead of forcing the delimiter so an answer follows",
        "flag": "--no-answer-on-end-of-turn", "negate": True})
    answer_without_budget: bool = field(default=False, metadata={
        "help": "with no thinking budget, still force the delimiter when the model ends its turn inside thinking"})

    def __post_init__(self):
        if isinstance(self.ignore_strs, str):
            object.__setattr__(self, "ignore_strs", (self.ignore_strs,))
        else:
            object.__setattr__(self, "ignore_strs", tuple(self.ignore_strs))
        for name, least, unset in (("min_thinking_tokens", 0, ""), ("num_ignore", 0, ""),
                                   ("max_thinking_tokens", 1, " (or unset for no cap)"), ("max_answer_tokens", 1, " (or unset for no cap)")):
            value = getattr(self, name)
            if value is None and unset:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"`{name}` must be >= {least}{unset}, got {value!r}")
        if self.max_thinking_tokens is not None and self.min_thinking_tokens > self.max_thinking_tokens:
            raise ConfigError(f"`min_thinking_tokens` ({self.min_thinking_tokens}) is larger than `max_thinking_tokens` "
                              f"({self.max_thinking_tokens}); make the minimum at most the maximum")
        if not self.ignore_strs or any(not isinstance(x, str) or not x for x in self.ignore_strs):
            raise ConfigError("`ignore_strs` must be non-empty strings (give the flag once per continuation to rotate)")
        if not isinstance(self.final_answer_str, str):
            raise ConfigError(f"`final_answer_str` must be a string, got {self.final_answer_str!r}")

    @property
    def forces_thinking(self) -> bool:
        """True when any thinking budget is set; otherwise the processor only watches."""
        return self.min_thinking_tokens > 0 or self.max_thinking_tokens is not None or self.num_ignore > 0

    @property
    def checks_thinking(self) -> bool:
        """True when the machine checks each thinking step for an end: a thinking budget, or
        ``answer_without_budget`` (with ``answer_on_end_of_turn``). False: it only watches."""
        return self.forces_thinking or (self.answer_without_budget and self.answer_on_end_of_turn)


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

    @property
    def end_set(self) -> tuple[int, ...]:
        """The tokens that end thinking when chosen: the delimiter's first token, then EOS and end-of-turn (no repeats).
        A multi-token delimiter therefore ends thinking as a unit once its first token is chosen."""
        return tuple(dict.fromkeys((self.think_end[0],) + self.end_ids))


@dataclass
class Forced:
    """One queued token: its id, why it is forced, what it counts as, and whether it closes thinking."""

    token: int
    reason: str | None
    category: str
    closes_thinking: bool = False


@dataclass
class RowState:
    """Everything the machine knows about one row; the engine reads it after ``generate`` returns."""

    phase: str = THINKING
    thinking_tokens: int = 0
    answer_tokens: int = 0
    forced_tokens: int = 0                    # forced delimiter and answer prefix: neither thinking nor answer
    injections: int = 0
    ignores_used: int = 0
    forced_stop: bool = False
    closing: bool = False                     # delimiter forcing has begun
    finish_reason: str | None = None
    queue: deque = field(default_factory=deque)
    pending: Forced | None = None             # decision taken for the token chosen at the last step
    tokens: list = field(default_factory=list)       # (id, source, reason, category, phase, prob) per observed token
    suppressed: dict = field(default_factory=dict)   # token index -> {"token", "p_end"} at each replaced ending


@dataclass(frozen=True)
class EndCheck:
    """What the sampler would do now, given to :meth:`BudgetMachine.decide` when the machine asks for it.

    ``would_end``: the sampler would choose an end token (greedy: the argmax is one; sampling: a uniform draw fell
    below P(end)). ``token``: which end token. ``p_end``: P(end) under the final distribution (for the trace).
    """

    would_end: bool
    token: int = -1
    p_end: float = 0.0


@dataclass(frozen=True)
class Action:
    """What one row's scores get at this step: ``force`` a token (all else masked), ``block_end`` (mask the end
    tokens), or neither (the scores pass unchanged)."""

    force: int | None = None
    block_end: bool = False


NOTHING, BLOCK_END = Action(), Action(block_end=True)


class BudgetMachine:
    """One row's budget forcing: ``observe`` each token the row gets, ``decide`` what the next step may produce.

    Example (no model needed)::

        >>> m = BudgetMachine(BudgetConfig(min_thinking_tokens=2), tokens)
        >>> m.needs_end_check()                       # nothing queued, below no cap: may the model end now?
        True
        >>> m.decide(EndCheck(True, tokens.end_ids[0], 0.9))   # it would, below the minimum: replaced by "Wait"
        Action(force=..., block_end=False)
        >>> m.observe(tokens.continuations[0][0], 0.01)

    Refuses :meth:`decide` without an :class:`EndCheck` when :meth:`needs_end_check` is true (a driver bug);
    budgets and strings are validated by :class:`BudgetConfig` and :class:`BudgetTokens`.
    """

    def __init__(self, budget: BudgetConfig, tokens: BudgetTokens):
        self.budget, self.tokens = budget, tokens
        self.state = RowState()

    @property
    def phase(self) -> str:
        """``thinking``, ``answer`` or ``done``."""
        return self.state.phase

    # ---- observing -------------------------------------------------------------------------------------------
    def observe(self, token: int, prob: float | None = None) -> None:
        """Record the token the row got after the last :meth:`decide` (``prob``: its probability, for the trace).
        Tokens after the row is done are ignored (finished rows get padding)."""
        st = self.state
        if st.phase == DONE:
            return
        decision, st.pending = st.pending, None
        if decision is None:
            decision = Forced(token, None, THINKING if st.phase == THINKING else ANSWER)
            source = "sampled"
        else:
            source = "forced" if decision.reason not in (None, "model_end") else "sampled"
        category = decision.category
        if token in self.tokens.end_ids and category in (THINKING, ANSWER):
            category = END
        st.tokens.append((token, source, decision.reason, category, st.phase, prob))
        if category == THINKING:
            st.thinking_tokens += 1
        elif category == ANSWER:
            st.answer_tokens += 1
        elif source == "forced" and category in (DELIMITER, ANSWER_PREFIX):
            st.forced_tokens += 1
        if decision.closes_thinking:
            st.phase = ANSWER
        elif st.phase == THINKING and not self.budget.checks_thinking:
            self._watch_for_delimiter()
        if category == END:
            st.finish_reason = st.finish_reason or ("stop" if st.phase == ANSWER else "stop_in_thinking")
            st.phase = DONE

    def _watch_for_delimiter(self) -> None:
        """Passive mode: the model wrote the whole delimiter itself; re-label those tokens and switch phase."""
        st, n = self.state, len(self.tokens.think_end)
        tail = tuple(t[0] for t in st.tokens[-n:])
        if len(st.tokens) >= n and tail == self.tokens.think_end:
            for i in range(len(st.tokens) - n, len(st.tokens)):
                tok, source, reason, _, _, prob = st.tokens[i]
                st.tokens[i] = (tok, source, reason, DELIMITER, THINKING, prob)
            st.thinking_tokens -= n
            st.phase = ANSWER

    # ---- deciding --------------------------------------------------------------------------------------------
    def _cap_reached(self) -> bool:
        cap = self.budget.max_thinking_tokens
        return cap is not None and self.state.thinking_tokens >= cap

    def needs_end_check(self) -> bool:
        """True when :meth:`decide` needs an :class:`EndCheck`: thinking under an active budget (or
        ``answer_without_budget``), nothing queued,
        below the cap. Only then must the driver work out whether the sampler would end (it costs a pass over V)."""
        st = self.state
        return (st.phase == THINKING and self.budget.checks_thinking and not st.closing
                and not st.queue and not self._cap_reached())

    def decide(self, end: EndCheck | None = None) -> Action:
        """What this step may produce: force a token, block the end tokens, or nothing.

        ``end`` is required when :meth:`needs_end_check` is true and ignored otherwise. Refuses a missing ``end``.
        """
        st, b = self.state, self.budget
        if st.phase == DONE:
            return NOTHING
        block = False
        if st.phase == THINKING and b.checks_thinking and not st.closing:
            if self._cap_reached():
                st.queue.clear()  # a continuation cut short by the cap is dropped
                st.forced_stop = st.closing = True
                self._queue(self.tokens.cap, "max_budget", DELIMITER, closes_at_end=True)
                self._queue(self.tokens.answer_prefix, "max_budget", ANSWER_PREFIX)
            elif not st.queue:
                if end is None:
                    raise TTScaleError("BudgetMachine.decide() needs an EndCheck here (needs_end_check() is True): "
                                       "tell it whether the sampler would end thinking now")
                if end.would_end:
                    self._end_attempt(end.token, end.p_end)
                block = not st.queue and st.pending is None
        elif st.phase == ANSWER and not st.queue and b.max_answer_tokens is not None \
                and st.answer_tokens >= b.max_answer_tokens:
            self._queue(self.tokens.end_ids[:1], "max_answer", END)
            st.finish_reason = "max_answer"
        if st.pending is None and st.queue:
            st.pending = st.queue.popleft()
        if st.pending is not None:
            return Action(force=st.pending.token)
        return BLOCK_END if block else NOTHING

    def _queue(self, ids, reason: str, category: str, closes_at_end: bool = False) -> None:
        for i, t in enumerate(ids):
            self.state.queue.append(Forced(t, reason, category, closes_at_end and i == len(ids) - 1))

    def _end_attempt(self, end_tok: int, p_end: float) -> None:
        st, b = self.state, self.budget
        if st.ignores_used < b.num_ignore or st.thinking_tokens < b.min_thinking_tokens:
            reason = "ignore" if st.ignores_used < b.num_ignore else "min_budget"
            st.ignores_used += reason == "ignore"
            cont = self.tokens.continuations[st.injections % len(self.tokens.continuations)]
            st.injections += 1
            st.suppressed[len(st.tokens)] = {"token": end_tok, "p_end": p_end}  # at the first injected token
            self._queue(cont, reason, THINKING)
            return
        delim = self.tokens.think_end
        st.closing = True
        if end_tok == delim[0]:
            # The model chose the delimiter itself: its first token is sampled, the rest completes the delimiter.
            st.pending = Forced(end_tok, "model_end", DELIMITER, closes_thinking=len(delim) == 1)
            self._queue(delim[1:], "delimiter", DELIMITER, closes_at_end=True)
        elif b.answer_on_end_of_turn:
            self._queue(delim, "end_of_turn", DELIMITER, closes_at_end=True)
            if not b.forces_thinking:
                # answer_without_budget: a model that ended its turn once tends to end it again right after the
                # delimiter; the final-answer string (as at the cap) starts the answer.
                self._queue(self.tokens.answer_prefix, "end_of_turn", ANSWER)
        else:
            st.pending = Forced(end_tok, None, END)

    # ---- ending and forking ----------------------------------------------------------------------------------
    def finish(self) -> RowState:
        """Close the row as ``length`` if it has not ended, and return its state."""
        if self.state.phase != DONE:
            self.state.finish_reason = "length"
        return self.state

    def fork(self) -> BudgetMachine:
        """An independent copy (search branches fork between tokens); budget and token ids are shared, never mutated."""
        new = copy.copy(self)
        new.state = copy.deepcopy(self.state)
        return new
