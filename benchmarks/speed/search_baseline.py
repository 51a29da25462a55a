"""The re-prefill baseline of ``ttscale bench search``: beam search and DVTS computed the way the reference does it.

search-and-learn (REFERENCE §3) at every step sends each candidate's whole text (prompt + steps so far) to the
generator, which prefills it from scratch and samples one step up to the ``\\n\\n`` stop string; then the PRM
re-scores every candidate's whole prefix; one problem at a time. Here on plain transformers:

    per step:  texts = prompt + "".join(steps) for each child           re-tokenised, left-padded
               model.generate(texts, stop at "\\n\\n", max_new_tokens = step cap)   prefill B x L, decode B x (S - 1)
               PRM without a cache: score(question, steps) for each child          every prefix again
               select / share from engine.search.select                            the same decisions as the engine

Selection, grouping, duplicate filtering, the per-step cap and the last step running to the end are the engine's
(engine/search/config.py, select.py), so the two competitors differ in how they compute, not in what they search.
Forward tokens count every position a forward ran, padding included (it is computed). Peak KV is the largest
``DynamicCache`` one ``generate`` call holds: batch x (prompt + generated) x bytes per token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from transformers.generation.stopping_criteria import StopStringCriteria

from engine.formats import build_prompt, end_of_turn_ids, get_format, prompt_style
from engine.logits.sampling import SamplingConfig
from engine.search.config import DEFAULT_SYSTEM_PROMPT, SearchConfig
from engine.search.prm import PRM, aggregate
from engine.search.select import Candidate, select, share


@dataclass
class BaselineResult:
    """One problem searched the reference way: completions (steps, score, finished how) and what it cost."""

    question: str
    completions: list[dict] = field(default_factory=list)
    policy_forward_tokens: int = 0
    prm_forward_tokens: int = 0
    generated_tokens: int = 0
    peak_kv_bytes: int = 0
    policy_s: float = 0.0
    prm_s: float = 0.0
    generate_calls: int = 0


def kv_bytes_per_token(model) -> int:
    """Keys + values of one token over all layers, from the model config (what a DynamicCache stores per position)."""
    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * heads * head_dim * next(model.parameters()).element_size()


class ReprefillSearch:
    """Beam search / DVTS by re-prefilling every step (see the module docstring). ``prm`` should have no cache
    (``ModelPRM(..., max_cache_tokens=0)``) to re-score whole prefixes as the reference does."""

    def __init__(self, model, tokenizer, config: SearchConfig, prm: PRM, sampling: SamplingConfig,
                 system: str | None = DEFAULT_SYSTEM_PROMPT):
        self.model, self.tokenizer, self.config, self.prm, self.sampling = model, tokenizer, config, prm, sampling
        self.style = prompt_style(tokenizer)
        self.system = system
        self.end_ids = list(end_of_turn_ids(tokenizer, model.generation_config.eos_token_id))
        self.stop = StopStringCriteria(tokenizer, [config.delimiter])  # built once: it costs ~250 ms (REFERENCE §5)
        self.bytes_per_token = kv_bytes_per_token(model)

    def render(self, question: str) -> str:
        """The same prompt text as :meth:`engine.search.Searcher.render` without budget forcing."""
        return build_prompt(self.tokenizer, question, replace(get_format("s1"), think_start=""), self.style, self.system)

    def search(self, question: str) -> BaselineResult:
        """Run the configured strategy on one question (seeding torch's global generator from ``sampling.seed``)."""
        cfg, res = self.config, BaselineResult(question)
        if self.sampling.seed is not None:
            torch.manual_seed(self.sampling.seed)  # generate samples from the global generator
        prompt = self.render(question)
        keep = cfg.groups()[0][1]
        plans = [((), g, width) for g, (width, _) in enumerate(cfg.groups())]
        depth = 0
        while plans:
            kids = [(steps, g) for steps, g, count in plans for _ in range(count)]
            new = self._generate(prompt, [s for s, _ in kids], final=depth + 1 >= cfg.max_steps, res=res)
            cands = [(steps + (text,), g, finished) for (steps, g), (text, finished) in zip(kids, new)]
            t0 = time.perf_counter()
            before = self.prm.forward_tokens
            scores = [aggregate(s, cfg.agg) for s in self.prm.score(question, [list(c[0]) for c in cands])]
            res.prm_forward_tokens += self.prm.forward_tokens - before
            res.prm_s += time.perf_counter() - t0
            sel = select([Candidate(g, s, f, "".join(steps)) for (steps, g, f), s in zip(cands, scores)], keep,
                         cfg.filter_duplicates)
            res.completions += [{"steps": list(cands[i][0]), "score": scores[i]} for i in sel.finished]
            survivors: dict = {}
            for i in sel.kept:
                survivors.setdefault(cands[i][1], []).append(cands[i][0])
            widths = dict(enumerate(w for w, _ in cfg.groups()))
            plans = [(steps, g, n) for g, paths in survivors.items() for steps, n in zip(paths, share(len(paths), widths[g]))]
            depth += 1
        return res

    @torch.inference_mode()
    def _generate(self, prompt: str, histories: list[tuple[str, ...]], final: bool, res: BaselineResult) -> list[tuple[str, bool]]:
        """One batched ``generate`` from the full texts; returns each child's new step text and whether it finished."""
        t0 = time.perf_counter()
        texts = [prompt + "".join(h) for h in histories]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=self.style.add_special_tokens)
        enc = enc.to(next(self.model.parameters()).device)
        s = self.sampling
        out = self.model.generate(**enc, max_new_tokens=self.config.max_step_tokens, eos_token_id=self.end_ids,
                                  pad_token_id=self.tokenizer.pad_token_id, stopping_criteria=[] if final else [self.stop],
                                  **({"do_sample": False} if s.greedy else
                                     {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k or None}))
        B, L = enc["input_ids"].shape
        S = out.shape[1] - L
        res.generate_calls += 1
        res.policy_forward_tokens += B * L + B * (S - 1)
        res.peak_kv_bytes = max(res.peak_kv_bytes, B * (L + S - 1) * self.bytes_per_token)
        steps = []
        for row in out[:, L:].tolist():
            # A row ends at its first end token, else (not on the last step) where the stop string completed, else at
            # the cap; positions after that are padding. The last step always finishes the branch.
            cut, used, finished = len(row), len(row), final
            for k, t in enumerate(row):
                if t in self.end_ids:
                    cut, used, finished = k, k + 1, True
                    break
                if not final and self.config.delimiter in self.tokenizer.decode(row[: k + 1]):
                    cut = used = k + 1
                    break
            res.generated_tokens += used
            steps.append((self.tokenizer.decode(row[:cut]), finished))
        res.policy_s += time.perf_counter() - t0
        return steps
