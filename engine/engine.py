"""The budget-forcing engine: load a model once, generate for many prompts in batches, get structured results.

    engine = ThinkingEngine.from_pretrained("smollm2-135m", format="s1")
    results = engine.generate(["What is 7 * 8?"], BudgetConfig(min_thinking_tokens=64, max_thinking_tokens=256))
    results[0].thinking, results[0].answer, results[0].waits_injected, results[0].finish_reason

Each batch is one ``model.generate`` call: phases, budgets and injections live in
:class:`engine.logits.budget.BudgetForcingProcessor` (one :class:`engine.logits.budget_state.BudgetMachine` per
row); nothing is re-prefilled. Every prompt may have its own budget (``generate(prompts, [budget_a, budget_b])``);
rows with different budgets share a batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from engine.errors import TTScaleError
from engine.formats import FormatConfig, ThinkingFormat, build_prompt, choose_format, get_format, prompt_style
from engine.limits import check_context
from engine.logits.budget import ANSWER, ANSWER_PREFIX, THINKING, BudgetConfig, BudgetForcingProcessor, BudgetTokens
from engine.logits.sampling import SamplingConfig
from engine.logits.warpers import warpers
from engine.model_config import ModelConfig
from engine.models import load_from_config, load_model

DEFAULT_ANSWER_ALLOWANCE = 512
DEFAULT_THINKING_ALLOWANCE = 1024


@dataclass
class GenerationResult:
    """One prompt's generation, split into thinking and answer, with what the budget did to it.

    ``answer`` is the text after thinking, a forced ``Final Answer:`` prefix included; ``answer_tokens`` counts only the
    model's own answer tokens (what ``max_answer_tokens`` caps), ``forced_tokens`` the delimiter and prefix the budget
    inserted.
    """

    prompt: str
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    waits_injected: int
    forced_stop: bool
    finish_reason: str
    forced_tokens: int = 0   # the forced delimiter and answer prefix: counted neither as thinking nor as answer
    token_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    wall_s: float = 0.0
    trace: list[dict] | None = None

    def to_json(self) -> dict:
        """The fields printed by ``ttscale generate --json`` (the trace is written separately)."""
        out = asdict(self)
        out.pop("trace")
        out.pop("token_ids")
        return out


class ThinkingEngine:
    """A model, its tokenizer and a thinking format, ready to generate with budgets.

    ``format="auto"`` picks s1 or think-tags from the tokenizer and the model's name (:func:`engine.formats.choose_format`);
    ``format_reason`` says why (set by ``auto``, or given by a caller that chose). Refuses (with :class:`TTScaleError`)
    delimiters the tokenizer cannot encode, empty prompts and empty prompt lists.
    """

    def __init__(self, model, tokenizer, format: str | ThinkingFormat = "auto", template: str = "auto",
                 system: str | None = None, format_reason: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        if format == "auto":
            name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
            format, format_reason = choose_format(tokenizer, name)
        self.format = get_format(format) if isinstance(format, str) else format
        self.format_reason = format_reason
        self.style = prompt_style(tokenizer, template)
        self.system = system

    @classmethod
    def from_pretrained(cls, spec: str = "smollm2-135m", format: str | ThinkingFormat = "auto", template: str = "auto",
                        system: str | None = None, **load_kwargs) -> "ThinkingEngine":
        """Load a model with :func:`engine.models.load_model` (same arguments) and wrap it; ``format="auto"`` (the
        default) chooses from the tokenizer and ``spec`` (:func:`engine.formats.choose_format`), as the CLI does."""
        lm = load_model(spec, **load_kwargs)
        reason = None
        if format == "auto":
            format, reason = choose_format(lm.tokenizer, spec)
        return cls(lm.model, lm.tokenizer, format=format, template=template, system=system, format_reason=reason)

    @classmethod
    def from_config(cls, model: ModelConfig, fmt: FormatConfig | None = None) -> "ThinkingEngine":
        """Load the model a :class:`~engine.model_config.ModelConfig` names and wrap it with ``fmt``'s format
        settings (``auto`` chosen from the loaded tokenizer, the reason kept for :meth:`describe`); what the command
        line does. Refuses what :func:`engine.models.load_model` and :meth:`FormatConfig.choose` refuse."""
        fmt = fmt or FormatConfig()
        lm = load_from_config(model)
        chosen, why = fmt.choose(lm.tokenizer, model.model)
        return cls(lm.model, lm.tokenizer, format=chosen, template=fmt.template, system=fmt.system, format_reason=why)

    def describe(self) -> str:
        """One line telling the user which format and prompt style are in use."""
        how = "chat template" if self.style.kind == "chat" else "plain prompt (the tokenizer has no chat template)"
        if self.format_reason:
            return (f"format auto -> {self.format.name} ({self.format_reason}): thinking opens with "
                    f"{self.format.think_start!r} and ends at {self.format.think_end!r}; {how}")
        return f"format {self.format.name}: thinking opens with {self.format.think_start!r} and ends at {self.format.think_end!r}; {how}"

    def render(self, prompt: str) -> str:
        """The exact text the model is given for ``prompt``."""
        return build_prompt(self.tokenizer, prompt, self.format, self.style, self.system)

    def budget_tokens(self, budget: BudgetConfig) -> BudgetTokens:
        """The budget's strings as token ids for this tokenizer (validates every delimiter)."""
        return BudgetTokens.build(self.tokenizer, self.format, budget, self.model.generation_config.eos_token_id)

    def max_new_tokens(self, budget: BudgetConfig, tokens: BudgetTokens) -> int:
        """The overall cap for one generate call: thinking + forced text + answer + end token."""
        thinking = budget.max_thinking_tokens or DEFAULT_THINKING_ALLOWANCE
        answer = budget.max_answer_tokens or DEFAULT_ANSWER_ALLOWANCE
        return thinking + len(tokens.cap) + len(tokens.answer_prefix) + answer + 1

    def generate(self, prompts: list[str], budget: BudgetConfig | list[BudgetConfig] | None = None,
                 sampling: SamplingConfig | None = None, batch_size: int = 8, max_new_tokens: int | None = None,
                 trace: bool = False, trace_top_k: int = 5, progress: bool = False,
                 **generate_kwargs) -> list[GenerationResult]:
        """Generate for every prompt, ``batch_size`` at a time, each batch in one ``generate`` call; all results in
        prompt order. The results of :meth:`iter_generate`, collected; it refuses what that refuses."""
        return [r for batch in self.iter_generate(prompts, budget, sampling, batch_size, max_new_tokens, trace,
                                                  trace_top_k, progress, **generate_kwargs) for r in batch]

    def iter_generate(self, prompts: list[str], budget: BudgetConfig | list[BudgetConfig] | None = None,
                      sampling: SamplingConfig | None = None, batch_size: int = 8, max_new_tokens: int | None = None,
                      trace: bool = False, trace_top_k: int = 5, progress: bool = False,
                      **generate_kwargs) -> Iterator[list[GenerationResult]]:
        """Generate for every prompt, ``batch_size`` at a time, yielding each batch's results (in prompt order) as
        soon as its one ``generate`` call finishes; the next batch starts only when the caller asks for it, so a
        caller that stops or is interrupted keeps every batch it was given.

        ``budget`` is one :class:`BudgetConfig` for every prompt or a list with one per prompt (None items: no
        budget); rows of one batch may mix budgets, and a batch runs to the largest of its rows' token caps.
        ``generate_kwargs`` go to ``model.generate`` (e.g. ``repetition_penalty``); they must not set sampling
        or stopping, which the engine owns. Refuses an empty list, an empty prompt, a budget list whose length is
        not the number of prompts (or with items that are not budgets), ``batch_size < 1`` and a
        ``max_new_tokens`` below 1, and a prompt whose tokens plus its batch's token cap pass the model's maximum
        positions (:func:`engine.limits.check_context`, with the numbers), all before any work (when this is called,
        not on the first ``next``).
        """
        sampling = sampling or SamplingConfig()
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise TTScaleError("no prompts given; pass at least one prompt")
        budgets = self._budgets(budget, len(prompts))
        if batch_size < 1:
            raise TTScaleError(f"--batch-size must be >= 1, got {batch_size}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise TTScaleError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
        texts = [self.render(p) for p in prompts]  # validates every prompt before any work
        built: dict[BudgetConfig, BudgetTokens] = {}
        for b in budgets:  # validates every budget's strings before any work; equal budgets are encoded once
            if b not in built:
                built[b] = self.budget_tokens(b)
        tokens = [built[b] for b in budgets]
        caps = [max_new_tokens or self.max_new_tokens(b, t) for b, t in zip(budgets, tokens)]
        self._check_context(texts, caps, batch_size, explicit_cap=max_new_tokens is not None)
        return self._batches(prompts, texts, budgets, sampling, tokens, caps, batch_size, trace, trace_top_k, progress,
                             generate_kwargs)

    def _batches(self, prompts, texts, budgets, sampling, tokens, caps, batch_size, trace, trace_top_k, progress,
                 kwargs) -> Iterator[list[GenerationResult]]:
        """The checked work of :meth:`iter_generate`, one batch per ``next``."""
        starts = range(0, len(texts), batch_size)
        bar = tqdm(total=len(starts), desc="generate", unit="batch") if progress and len(starts) > 1 else None
        try:
            for start in starts:
                part = slice(start, start + batch_size)
                seed = None if sampling.seed is None else sampling.seed + start
                yield self._generate_batch(prompts[part], texts[part], budgets[part], sampling, tokens[part],
                                           max(caps[part]), seed, trace, trace_top_k, start, kwargs)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    def _check_context(self, texts: list[str], caps: list[int], batch_size: int, explicit_cap: bool) -> None:
        """Refuse, before any work, a prompt whose tokens plus its batch's token cap pass the model's positions."""
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=self.style.add_special_tokens)["input_ids"]]
        fix = "--max-new-tokens" if explicit_cap else "--max-thinking-tokens / --max-answer-tokens (or set --max-new-tokens)"
        for at in range(0, len(texts), batch_size):
            cap = max(caps[at: at + batch_size])
            for i in range(at, min(at + batch_size, len(texts))):
                check_context(self.model, lengths[i], cap, f"prompt {i + 1} of {len(texts)}", fix=fix)

    @staticmethod
    def _budgets(budget, n: int) -> list[BudgetConfig]:
        """One :class:`BudgetConfig` per prompt; refuses a list of the wrong length or with other items."""
        if budget is None or isinstance(budget, BudgetConfig):
            return [budget or BudgetConfig()] * n
        if not isinstance(budget, (list, tuple)):
            raise TTScaleError(f"budget must be a BudgetConfig or a list with one per prompt, got {type(budget).__name__}")
        if len(budget) != n:
            raise TTScaleError(f"budget lists {len(budget)} budgets for {n} prompts; pass one per prompt "
                               "(in prompt order), or a single BudgetConfig for all")
        for i, b in enumerate(budget):
            if b is not None and not isinstance(b, BudgetConfig):
                raise TTScaleError(f"budget[{i}] must be a BudgetConfig (or None for no budget), got {type(b).__name__}")
        return [b or BudgetConfig() for b in budget]

    @torch.inference_mode()
    def _generate_batch(self, prompts, texts, budgets, sampling, tokens, cap, seed, trace, trace_top_k, offset, kwargs):
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=self.style.add_special_tokens)
        device = next(self.model.parameters()).device
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        proc = BudgetForcingProcessor(tokens, budgets, greedy=sampling.greedy, seed=seed,
                                      trace_top_k=trace_top_k if trace else 0)
        if seed is not None:
            torch.manual_seed(seed)
        t0 = time.perf_counter()
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=cap,
            logits_processor=LogitsProcessorList(warpers(sampling) + [proc]),
            eos_token_id=list(tokens[0].end_ids), pad_token_id=self.tokenizer.pad_token_id,
            **sampling.generate_kwargs(), **kwargs,
        )
        wall = time.perf_counter() - t0
        states = proc.finish(out)
        results = []
        for row, (prompt, st) in enumerate(zip(prompts, states)):
            ids_row = [t[0] for t in st.tokens]
            thinking = [t[0] for t in st.tokens if t[3] == THINKING]
            answer = [t[0] for t in st.tokens if t[3] in (ANSWER_PREFIX, ANSWER)]
            res = GenerationResult(
                prompt=prompt,
                thinking=self.tokenizer.decode(thinking, skip_special_tokens=False),
                answer=self.tokenizer.decode(answer, skip_special_tokens=True).strip(),
                thinking_tokens=st.thinking_tokens, answer_tokens=st.answer_tokens, waits_injected=st.injections,
                forced_stop=st.forced_stop, finish_reason=st.finish_reason, forced_tokens=st.forced_tokens, token_ids=ids_row,
                prompt_tokens=int(mask[row].sum()), wall_s=wall,
            )
            if trace:
                res.trace = self._trace_records(offset + row, row, st, proc, texts[row], budgets[row], sampling, res)
            results.append(res)
        return results

    def _trace_records(self, index, row, st, proc, text, budget, sampling, res) -> list[dict]:
        """One header record (with this row's own budget), then one record per generated token (see engine/trace.py)."""
        tok = self.tokenizer
        head = {"type": "generation", "prompt_index": index, "prompt": res.prompt, "rendered_prompt": text,
                "format": asdict(self.format), "template": self.style.kind, "budget": asdict(budget),
                "sampling": asdict(sampling), **{k: v for k, v in res.to_json().items() if k != "prompt"},
                "generated_tokens": len(st.tokens)}  # lets a reader tell a complete trace from one cut short
        records = [head]
        for pos, (tid, source, reason, category, phase, prob) in enumerate(st.tokens):
            rec = {"type": "token", "prompt_index": index, "position": pos, "id": tid, "text": tok.decode([tid]),
                   "phase": phase, "kind": category, "source": source, "reason": reason,
                   "prob": None if prob is None else round(prob, 6)}
            if pos < len(proc.top):
                vals, idx = proc.top[pos]
                rec["top"] = [[int(i), tok.decode([int(i)]), round(float(v), 6)] for v, i in zip(vals[row], idx[row])]
                rec["entropy"] = round(float(proc.entropy[pos][row]), 6)
            if pos in st.suppressed:
                sup = st.suppressed[pos]
                rec["suppressed_end"] = {"id": sup["token"], "text": tok.decode([sup["token"]]), "p_end": round(sup["p_end"], 6)}
            records.append(rec)
        return records
