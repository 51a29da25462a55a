"""s1's step-conditional countdown: force ``<|im_start|>K steps left\\n`` before each step of thinking.

s1's step-conditional baseline (paper §3.1, App. E; REFERENCE §1) asks for "up to N steps" and writes a countdown
delimiter before every step, steps being split on blank lines:

    <think>\\n «<|im_start|>3 steps left\\n» First, ...\\n\\n «<|im_start|>2 steps left\\n» Then ...\\n\\n «<|im_start|>1 steps left\\n» ...

The countdown is a per-row queue of forced tokens, the same idea as budget forcing (STYLE §8): when a row's thinking
text ends a non-blank step with the delimiter (``\\n\\n``, matched as a string because models write it as one token
or two, REFERENCE §5), the tokens of the next countdown line are queued and forced one per step. It counts down to 0
and then stops writing; it never ends thinking itself, because the baseline measures whether the *model* keeps to
the steps it was asked for (s1 reports Control 60% for it). Once the row's tokens end with the end-of-thinking
delimiter, the row is left alone.

Two ways to plug it in, sharing one state machine:

- as a ``LogitsProcessor`` (``__call__(input_ids, scores) -> scores``), in any ``LogitsProcessorList``;
- as ``prefix_allowed_tokens_fn`` of ``model.generate`` (:meth:`CountdownProcessor.allowed_tokens`), which is how it
  rides along ``ThinkingEngine.generate(..., prefix_allowed_tokens_fn=proc.allowed_tokens)``: transformers applies
  that built-in constraint *before* custom processors, so the budget processor sees the forced token as the only
  choice and simply records it as a thinking token.

Use it with the budget processor in watch mode only (no thinking budget): with an active budget, a forced
``<|im_start|>`` would look like an attempt to end thinking in the s1 format, whose delimiter starts with that token.

Example::

    >>> cd = CountdownProcessor(tokenizer, steps=3, think_end="</think>", vocab_size=model.config.vocab_size)
    >>> results = engine.generate(prompts, BudgetConfig(max_answer_tokens=64), prefix_allowed_tokens_fn=cd.allowed_tokens)
    >>> cd.states[0].inserted    # countdown lines written into row 0
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from engine.errors import TTScaleError
from engine.formats import encode_text

DEFAULT_TEMPLATE = "<|im_start|>{k} steps left\n"   # REFERENCE §1; "{k} steps left\n" when <|im_start|> is no token
PLAIN_TEMPLATE = "{k} steps left\n"
_TAIL = 64  # characters of recent text kept per row: enough to see a delimiter, and a step's last words


def countdown_template(tokenizer) -> str:
    """s1's ``<|im_start|>{k} steps left\\n`` when the tokenizer has ``<|im_start|>`` as one token, else ``{k} steps left\\n``."""
    vocab = tokenizer.get_vocab()
    return DEFAULT_TEMPLATE if "<|im_start|>" in vocab else PLAIN_TEMPLATE


@dataclass
class CountdownState:
    """One row: how many countdown lines are left to write, the tokens queued now, and what was seen so far."""

    left: int                                   # the K of the next countdown line; -1 when the countdown is over
    queue: deque = field(default_factory=deque)
    expected: int | None = None                 # the token forced at the last call (None: nothing forced)
    tail: str = ""                              # recent text of the current step (after the last countdown line)
    tokens: list = field(default_factory=list)  # every generated token id of the row
    inserted: int = 0                           # countdown lines written (fully or in part)
    done: bool = False                          # thinking ended (or a forced line was overridden by another processor)


class CountdownProcessor(LogitsProcessor):
    """Forces a countdown line before the first step of thinking and after every blank-line step, down to 0.

    ``steps`` is the N of "Think for up to N steps."; ``think_end`` the end-of-thinking delimiter (the row is left
    alone once its tokens end with it); ``delimiter`` the step separator; ``template`` the countdown line with a
    ``{k}`` field (default: :func:`countdown_template`); ``vocab_size`` the width of the model's scores (needed by
    :meth:`allowed_tokens`, which returns every id when nothing is forced). One instance serves one ``generate`` call.

    Refuses ``steps < 1``, an empty delimiter, a template without ``{k}`` and strings the tokenizer cannot represent.
    """

    def __init__(self, tokenizer, steps: int, think_end: str, delimiter: str = "\n\n", template: str | None = None,
                 vocab_size: int | None = None):
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise TTScaleError(f"step-conditional steps={steps!r}: must be an integer >= 1 (the N of 'Think for up to N steps')")
        if not delimiter:
            raise TTScaleError("the countdown step delimiter is empty; steps are split on a blank line ('\\n\\n') by default")
        template = template or countdown_template(tokenizer)
        if "{k}" not in template:
            raise TTScaleError(f"countdown template {template!r} has no '{{k}}' field for the number of steps left")
        self.tokenizer, self.steps, self.delimiter, self.template = tokenizer, steps, delimiter, template
        self.think_end = encode_text(tokenizer, think_end, "the end-of-thinking delimiter (--think-end)")
        self.lines = {k: encode_text(tokenizer, template.format(k=k), "the countdown line") for k in range(steps + 1)}
        self.vocab_size = vocab_size
        self.states: list[CountdownState] | None = None
        self.prompt_len: int | None = None
        self._everything: torch.Tensor | None = None   # (V,) all ids: the "nothing forced" answer of allowed_tokens

    # ---- the state machine, one row at a time --------------------------------------------------------------------
    def _start(self, batch: int, prompt_len: int) -> None:
        self.states = [CountdownState(left=self.steps) for _ in range(batch)]
        self.prompt_len = prompt_len
        for st in self.states:  # the first step is announced before anything is generated
            self._queue_line(st)

    def _queue_line(self, st: CountdownState) -> None:
        st.queue.extend(self.lines[st.left])
        st.left -= 1
        st.inserted += 1
        st.tail = ""

    def _observe(self, st: CountdownState, tok: int) -> None:
        """Take in the token the row got at the last step."""
        if st.done:
            return
        st.tokens.append(tok)
        if st.expected is not None and tok != st.expected:
            # Another processor forced something else here (a budget cap, an end of turn): stop interfering.
            st.done, st.expected = True, None
            st.queue.clear()
            return
        forced, st.expected = st.expected is not None, None
        n = len(self.think_end)
        if len(st.tokens) >= n and tuple(st.tokens[-n:]) == self.think_end:
            st.done = True
            st.queue.clear()
            return
        if forced:
            return  # tokens of the countdown line itself are not step text
        st.tail = (st.tail + self.tokenizer.decode([tok], skip_special_tokens=False))[-_TAIL:]
        if st.left >= 0 and not st.queue and st.tail.endswith(self.delimiter) and st.tail[: -len(self.delimiter)].strip():
            self._queue_line(st)

    def _decide(self, st: CountdownState) -> int | None:
        """The token to force now for this row, or None."""
        if st.done or not st.queue:
            return None
        st.expected = st.queue.popleft()
        return st.expected

    def _step(self, row: int, ids: torch.Tensor) -> int | None:
        """Observe row ``row``'s newest token (when there is one) and decide; ``ids`` is (L,) prompt + generated."""
        st = self.states[row]
        generated = ids.shape[-1] - self.prompt_len
        if generated > len(st.tokens) and not st.done:
            self._observe(st, int(ids[-1]))
        return self._decide(st)

    # ---- plug-ins --------------------------------------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (B, L) prompt (left-padded) + generated so far; scores: (B, V).
        if self.states is None:
            self._start(input_ids.shape[0], input_ids.shape[1])
        forced = [self._step(b, input_ids[b]) for b in range(input_ids.shape[0])]
        rows = [b for b, f in enumerate(forced) if f is not None]
        if not rows:
            return scores
        out = scores.clone()  # never edit scores in place (REFERENCE §5)
        r = torch.tensor(rows, device=scores.device)
        out[r] = float("-inf")
        out[r, torch.tensor([forced[b] for b in rows], device=scores.device)] = 0.0
        return out

    def allowed_tokens(self, batch_id: int, ids: torch.Tensor) -> torch.Tensor:
        """``prefix_allowed_tokens_fn`` for ``model.generate``: the forced id alone, or every id (a (V,) tensor).

        transformers calls it once per row per step with the row's (L,) ids; rows are created as they first appear.
        Refuses a missing ``vocab_size`` (given at construction), which it needs to allow every token.
        """
        if self.vocab_size is None:
            raise TTScaleError("CountdownProcessor.allowed_tokens needs vocab_size (model.config.vocab_size) at construction")
        if self.states is None:
            self.states, self.prompt_len = [], ids.shape[-1]
        while len(self.states) <= batch_id:
            st = CountdownState(left=self.steps)
            self._queue_line(st)
            self.states.append(st)
        forced = self._step(batch_id, ids)
        if forced is not None:
            return torch.tensor([forced], device=ids.device)
        if self._everything is None or self._everything.device != ids.device:
            self._everything = torch.arange(self.vocab_size, device=ids.device)
        return self._everything
