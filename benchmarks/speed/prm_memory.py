"""Benchmark: PRM prefix-cache memory for N candidates of one question, old per-entry KV copies vs KVCacheManager.

    ttscale bench prm-memory --n 4 8 16 --question-tokens 100

In one process, on a tiny random Llama (built in-process like ``tests/conftest.py``'s ``make_tiny_model``) with
the real SmolLM2 tokenizer, two PRMs score the same calls:
  (a) baseline  ``BaselineModelPRM`` below: the ``_PrefixCache`` scorer ModelPRM used before (commit 88bd744),
                copied here verbatim but for names; each cached entry holds the KV of its whole prefix;
  (b) ttscale   ``engine.search.prm.ModelPRM``: entries are branches of one ``KVCacheManager``, so a prefix
                many entries share is stored once.
Two workloads per N, each a question of about ``--question-tokens`` tokens, 2 common steps, then N diverging
third steps:
  stepwise  as a search scores it: [s1], then [s1, s2], then the N candidates [s1, s2, s3_i] in one call;
  one_call  the N candidates [s1, s2, s3_i] in one call on an empty cache (best-of-N style).
Figures: KV bytes held after the last call (baseline: bytes of every entry's KV tensors; ttscale: the manager's
``stats().memory_bytes``) and forward tokens (real token positions run). Scores are asserted equal (1e-5).
The last line printed is one JSON object (STYLE §11).
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from transformers import AutoTokenizer, DynamicCache, LlamaConfig, LlamaForCausalLM

from benchmarks import options
from benchmarks.speed.harness import at_least, device_info, envelope, finish, namespace, run_main
from engine.errors import TTScaleError
from engine.kv_cache.compat import require_cache_argument, returned_cache
from engine.models import gguf_to_safetensors, resolve_model
from engine.search.prm import PRM, ModelPRM, _check_candidates
from engine.search.prm_protocols import Protocol, make_protocol

SENTENCES = [
    "A farmer has a rectangular field whose length is three times its width.",
    "He walks around the whole field once every morning and counts exactly 480 steps.",
    "Each of his steps is 0.8 metres long, and he always walks along the edge.",
    "In spring he plants wheat on two thirds of the field and barley on the rest.",
    "Wheat yields 0.6 kilograms per square metre and barley yields 0.45 kilograms per square metre.",
    "A neighbour offers to buy the whole harvest at 0.3 dollars per kilogram.",
    "How many dollars will the farmer receive, rounded to the nearest dollar?",
]
COMMON_STEPS = ["The perimeter is 480 * 0.8 = 384 metres.", "So 2 * (w + 3w) = 384, hence w = 48 and the length is 144."]


# ─── BASELINE: the pre-KVCacheManager PRM scorer (measured against, not used elsewhere) ──────────────────────────


@dataclass
class _BaselineEntry:
    """A scored prefix: its ids (ending at its last scored token), their KV per layer (1, H, T, D), its step scores."""

    ids: tuple[int, ...]
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    scores: tuple[float, ...]


class _BaselinePrefixCache:
    """LRU map ``(question, steps | None) -> _BaselineEntry``; ``None`` steps is the question's shared root."""

    def __init__(self):
        self.entries: OrderedDict[tuple, _BaselineEntry] = OrderedDict()
        self.tokens = 0

    def get(self, key) -> _BaselineEntry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key, entry: _BaselineEntry) -> None:
        self.pop(key)
        self.entries[key] = entry
        self.tokens += len(entry.ids)

    def pop(self, key) -> bool:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.tokens -= len(entry.ids)
        return entry is not None

    def evict(self, max_tokens: int) -> None:
        while self.tokens > max_tokens and self.entries:
            self.pop(next(iter(self.entries)))

    def check_invariants(self) -> None:
        assert self.tokens == sum(len(e.ids) for e in self.entries.values()), "cached token count drifted"
        for (_question, steps), e in self.entries.items():
            assert len(e.scores) == (0 if steps is None else len(steps)), f"entry {steps!r} has {len(e.scores)} scores"
            for k, v in e.kv:
                assert k.shape[0] == 1 and k.shape[2] == len(e.ids) and v.shape == k.shape, "KV length differs from ids"


@dataclass
class _BaselineRow:
    """One candidate to compute in this call: its ids, scored positions, and the cached entry it starts from."""

    key: tuple
    ids: tuple[int, ...]
    positions: list[int]
    shared: int                       # leading tokens that depend only on the question
    base: _BaselineEntry | None = None
    scores: list[float] = field(default_factory=list)


class BaselineModelPRM(PRM):
    """BASELINE: ``engine.search.prm.ModelPRM`` as it was before it ran on ``KVCacheManager`` (commit 88bd744).

    Every entry holds its whole prefix's KV as its own tensors. Kept here, unchanged but for names, only to be
    measured against; do not use it elsewhere.

    ``model`` is a causal LM for ``lm`` protocols or a model with a 2-way per-token head for ``qwen-prm``.
    ``batch_size`` rows run per forward; ``max_cache_tokens`` bounds the cached KV (in tokens, LRU). Refuses an
    unknown protocol, tokenizers without the protocol's tokens, and a causal-LM protocol on a model without an
    output embedding.
    """

    def __init__(self, model, tokenizer, protocol: str, *, batch_size: int = 8, max_cache_tokens: int = 32768):
        super().__init__()
        if batch_size < 1:
            raise TTScaleError(f"PRM batch_size must be at least 1, got {batch_size}")
        if max_cache_tokens < 0:
            raise TTScaleError(f"PRM max_cache_tokens must be 0 (no cache) or more, got {max_cache_tokens}")
        self.protocol: Protocol = make_protocol(protocol, tokenizer)
        self.name = self.protocol.name
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_cache_tokens = batch_size, max_cache_tokens
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.reused_tokens = 0        # tokens served from cached KV instead of being run again
        self._cache = _BaselinePrefixCache()
        # lm protocols run the decoder body and apply two rows of the head themselves; qwen-prm runs the whole model.
        self._body = model.base_model if self.protocol.head == "lm" else model
        self._cache_arg = require_cache_argument(self._body)
        if self.protocol.head == "lm":
            head = model.get_output_embeddings()
            if head is None or not hasattr(head, "weight"):
                raise TTScaleError(f"PRM protocol {protocol} reads next-token logits, and this model has no output embedding (is it a causal LM?)")
            ids = torch.tensor(self.protocol.label_ids, device=head.weight.device)
            self._label_weight = head.weight.detach()[ids]                                        # (2, H)
            bias = getattr(head, "bias", None)
            self._label_bias = None if bias is None else bias.detach()[ids]
            self._softcap = getattr(model.config, "final_logit_softcapping", None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def cached_tokens(self) -> int:
        """Tokens whose KV the cache holds now."""
        return self._cache.tokens

    def check_invariants(self) -> None:
        """Assert the cache's bookkeeping is consistent and within ``max_cache_tokens``."""
        self._cache.check_invariants()
        assert self._cache.tokens <= self.max_cache_tokens, "cache over its token bound"

    def release(self, question, steps_prefix=None):
        """Drop the cached entry of ``steps_prefix`` (or every entry of ``question``, root included); returns entries dropped."""
        if steps_prefix is None:
            keys = [k for k in self._cache.entries if k[0] == question]
        else:
            keys = [(question, tuple(self.protocol.clean(s) for s in steps_prefix))]
        return sum(self._cache.pop(k) for k in keys)

    def clear(self):
        """Drop every cached prefix (``forward_tokens`` keeps counting)."""
        self._cache = _BaselinePrefixCache()

    # 1. plan: tokenise, find the longest cached prefix
    # The baseline differs from ModelPRM only in where prefixes are cached: tokenising and the head are shared.
    _tokenize = ModelPRM._tokenize
    _probs = ModelPRM._probs

    def _plan(self, question: str, steps: tuple[str, ...]) -> _BaselineRow:
        ids, positions, shared = self._tokenize(question, steps)
        row = _BaselineRow(key=(question, steps), ids=ids, positions=positions, shared=shared)
        for j in range(len(steps) - 1, 0, -1):
            entry = self._cache.get((question, steps[:j]))
            if entry is not None and len(entry.ids) <= positions[j] and ids[: len(entry.ids)] == entry.ids:
                row.base, row.scores = entry, list(entry.scores)
                break
        return row

    def _attach_root(self, question: str, fresh: list[_BaselineRow]) -> None:
        """Start candidates with no cached step prefix from the question's root entry, computing it once if needed."""
        root = self._cache.get((question, None))
        usable = lambda e, r: len(e.ids) <= r.shared and r.ids[: len(e.ids)] == e.ids  # noqa: E731
        rest = []
        for r in fresh:
            if root is not None and usable(root, r):
                r.base = root
            else:
                rest.append(r)
        if not rest:
            return
        length = min(r.shared for r in rest)
        first = rest[0].ids
        for r in rest[1:]:
            length = next((t for t in range(length) if r.ids[t] != first[t]), length)
        if length < 1:
            return
        root = _BaselineEntry(ids=first[:length], kv=[], scores=())
        self._run([_BaselineRow(key=(question, None), ids=root.ids, positions=[], shared=0)], store=False, into=root)
        self._cache.put((question, None), root)
        for r in rest:
            r.base = root

    # 2. run: batched forward of the new tokens on top of each row's cached prefix
    def _run(self, rows: list[_BaselineRow], store: bool = True, into: _BaselineEntry | None = None) -> None:
        rows = sorted(rows, key=lambda r: len(r.ids), reverse=True)
        for at in range(0, len(rows), self.batch_size):
            self._forward_chunk(rows[at : at + self.batch_size], store, into)

    def _forward_chunk(self, chunk: list[_BaselineRow], store: bool, into: _BaselineEntry | None) -> None:
        # Row i:  [ left pad | cached prefix (p_i) | new tokens (n_i) | right pad ];  P = max p_i, N = max n_i
        dev = self.device
        past = [len(r.base.ids) if r.base is not None else 0 for r in chunk]
        new = [r.ids[p:] for r, p in zip(chunk, past)]
        B, P, N = len(chunk), max(past), max(len(n) for n in new)
        input_ids = torch.full((B, N), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, P + N), dtype=torch.long)
        for i, (p, n) in enumerate(zip(past, new)):
            input_ids[i, : len(n)] = torch.tensor(n, dtype=torch.long)
            mask[i, P - p : P + len(n)] = 1
        position_ids = torch.tensor(past, dtype=torch.long)[:, None] + torch.arange(N)[None, :]   # (B, N)
        cache = self._batch_cache(chunk, past, P)
        kwargs = dict(input_ids=input_ids.to(dev), attention_mask=mask.to(dev), position_ids=position_ids.to(dev),
                      use_cache=True, **{self._cache_arg: cache})
        with torch.inference_mode():
            out = self._body(**kwargs)
            outputs = out.last_hidden_state if self.protocol.head == "lm" else out.logits        # (B, N, H) or (B, N, 2)
            returned = returned_cache(out)   # models update the passed cache in place; most also return it
            if returned is not None:
                cache = returned
            rows_idx, cols_idx = [], []
            for i, (r, p) in enumerate(zip(chunk, past)):
                for q in r.positions[len(r.scores):]:
                    rows_idx.append(i)
                    cols_idx.append(q - p)
            probs = self._probs(outputs[rows_idx, cols_idx]).tolist() if rows_idx else []
        self.forward_tokens += sum(len(n) for n in new)
        self.reused_tokens += sum(past)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        for i, (r, p) in enumerate(zip(chunk, past)):
            take = len(r.positions) - len(r.scores)
            r.scores, probs = r.scores + probs[:take], probs[take:]
            kv = [(k[i : i + 1, :, P - p : P + len(new[i])].clone(), v[i : i + 1, :, P - p : P + len(new[i])].clone()) for k, v in layers]
            if into is not None:
                into.kv = kv
            if store and self.max_cache_tokens > 0:
                self._cache.put(r.key, _BaselineEntry(ids=r.ids, kv=kv, scores=tuple(r.scores)))

    def _batch_cache(self, chunk: list[_BaselineRow], past: list[int], P: int):
        """A DynamicCache holding each row's cached prefix, left-padded to ``P`` (padding is masked out)."""
        if P == 0:
            return DynamicCache()
        donor = next(r.base for r in chunk if r.base is not None)
        data = []
        for layer, (k0, v0) in enumerate(donor.kv):
            K = k0.new_zeros((len(chunk), k0.shape[1], P, k0.shape[3]))                            # (B, H, P, D)
            V = v0.new_zeros((len(chunk), v0.shape[1], P, v0.shape[3]))
            for i, (r, p) in enumerate(zip(chunk, past)):
                if p:
                    K[i, :, P - p :] = r.base.kv[layer][0][0]
                    V[i, :, P - p :] = r.base.kv[layer][1][0]
            data.append((K, V))
        return DynamicCache(ddp_cache_data=data)

    # 3. score: the public entry point
    def score(self, question, candidates):
        """Scores for every step of every candidate (same order), computing only tokens no cached prefix covers.

        Each step is stripped of surrounding whitespace and of the protocol's tags. Identical candidates in one
        call are computed once. Refuses malformed candidates and text whose scored tokens cannot be located.
        """
        _check_candidates(question, candidates)
        out: list[list[float] | None] = [None] * len(candidates)
        todo: dict[tuple, _BaselineRow] = {}
        owners = []
        for i, steps in enumerate(candidates):
            clean = tuple(self.protocol.clean(s) for s in steps)
            hit = self._cache.get((question, clean)) if clean else None
            if not clean or hit is not None:
                out[i] = list(hit.scores) if hit is not None else []
                continue
            if clean not in todo:
                todo[clean] = self._plan(question, clean)
            owners.append((i, clean))
        if self.max_cache_tokens > 0:
            self._attach_root(question, [r for r in todo.values() if r.base is None])
        self._run(list(todo.values()))
        for i, clean in owners:
            out[i] = list(todo[clean].scores)
        self._cache.evict(self.max_cache_tokens)
        return out


# ─── the benchmark ─────────────────────────────────────────────────────────────────────────────────────────────


def tiny_llama(vocab_size: int, seed: int = 0):
    """A randomly initialised 2-layer Llama on the tokenizer's vocabulary, fp32, eval mode (as tests/conftest.py)."""
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True, bos_token_id=1,
                      eos_token_id=2, pad_token_id=2, initializer_range=0.2)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def smollm2_tokenizer():
    """The real SmolLM2 tokenizer, from the embedded GGUF (converted once per machine)."""
    return AutoTokenizer.from_pretrained(gguf_to_safetensors(resolve_model("smollm2-135m")[1]))


def make_question(tokenizer, tokens: int) -> str:
    """Sentences of SENTENCES (cycled) until the question is at least ``tokens`` tokens long."""
    if tokens < 1:
        raise TTScaleError(f"--question-tokens must be at least 1, got {tokens}")
    words, at = [], 0
    while len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) < tokens:
        words.append(SENTENCES[at % len(SENTENCES)])
        at += 1
    return " ".join(words)


def baseline_bytes(prm: BaselineModelPRM) -> int:
    """KV bytes the baseline holds: every entry's own key and value tensors."""
    return sum(t.numel() * t.element_size() for e in prm._cache.entries.values() for kv in e.kv for t in kv)


def _workload(question: str, n: int, stepwise: bool) -> list[list[list[str]]]:
    candidates = [COMMON_STEPS + [f"Candidate {i}: the area is 48 * 144 = {6912 + i} square metres."] for i in range(n)]
    return ([[COMMON_STEPS[:1]], [COMMON_STEPS]] if stepwise else []) + [candidates]


def _run(prm, question, calls) -> tuple[list[list[float]], int]:
    scores = [prm.score(question, c) for c in calls][-1]
    return scores, prm.forward_tokens


def bench(ns=(4, 8, 16), question_tokens: int = 100, protocol: str = "rlhflow", tokenizer=None, model=None) -> dict:
    """Both PRMs on both workloads at each N; returns the result dict (config, versions, figures)."""
    if protocol not in ("rlhflow", "math-shepherd"):
        raise TTScaleError(f"--protocol {protocol}: the tiny stand-in is a causal LM, so use rlhflow or math-shepherd")
    if not ns or any(n < 1 for n in ns):
        raise TTScaleError(f"--n needs positive candidate counts, got {list(ns)}")
    tokenizer = tokenizer if tokenizer is not None else smollm2_tokenizer()
    model = model if model is not None else tiny_llama(len(tokenizer))
    question = make_question(tokenizer, question_tokens)
    figures = {}
    for n in ns:
        for workload in ("stepwise", "one_call"):
            calls = _workload(question, n, workload == "stepwise")
            old = BaselineModelPRM(model, tokenizer, protocol)
            new = ModelPRM(model, tokenizer, protocol)
            old_scores, old_tokens = _run(old, question, calls)
            new_scores, new_tokens = _run(new, question, calls)
            torch.testing.assert_close(torch.tensor(new_scores), torch.tensor(old_scores), rtol=0, atol=1e-5)
            old.check_invariants()
            new.check_invariants()
            old_b, stats = baseline_bytes(old), new.kv_stats()
            figures[f"n{n}_{workload}"] = {
                "n": n, "workload": workload,
                "baseline": {"kv_bytes": old_b, "cached_tokens": old.cached_tokens, "forward_tokens": old_tokens,
                             "entries": len(old._cache.entries)},
                "ttscale": {"kv_bytes": stats.memory_bytes, "cached_tokens": new.cached_tokens, "forward_tokens": new_tokens,
                            "entries": len(new._cache.entries), "reserved_bytes": stats.reserved_bytes},
                "bytes_ratio": round(old_b / stats.memory_bytes, 3),
                "forward_tokens_ratio": round(old_tokens / new_tokens, 3),
            }
    q_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    config = {"ns": list(ns), "question_tokens": q_tokens, "protocol": protocol, "common_steps": len(COMMON_STEPS),
              "model": "tiny random Llama (2 layers, hidden 64, 2 kv heads, fp32)", "tokenizer": "SmolLM2-135M"}
    # Bytes and token counts are exact, not timed: the timing block says so.
    return envelope("prm_memory", config, device_info(next(model.parameters()).device),
                    {"warmup": 0, "repeats": 1, "order": "none", "statistic": "exact (memory and token counts)"}, figures)


SPEC = options.PRM_MEMORY.spec
Options = options.PRMMemoryOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`~benchmarks.options.PRMMemoryOptions`."""
    SPEC.add_to(p)


def print_table(result: dict, out=None) -> None:
    """One line per (N, workload): KV bytes and forward tokens, baseline -> ttscale."""
    out = out or sys.stdout
    for key, f in result["figures"].items():
        print(f"{key:>16}: KV bytes {f['baseline']['kv_bytes']:>9} -> {f['ttscale']['kv_bytes']:>9} (x{f['bytes_ratio']}), "
              f"forward tokens {f['baseline']['forward_tokens']:>5} -> {f['ttscale']['forward_tokens']:>5}", file=out)


def main(args) -> int:
    """Run the benchmark, print a short table, end with one JSON line. Refuses N < 1 and a question under 8 tokens."""
    args = namespace(args)
    if not args.n or min(args.n) < 1:
        raise TTScaleError(f"--n needs positive candidate counts, got {args.n}")
    at_least("--question-tokens", args.question_tokens, 8)
    return finish(bench(tuple(args.n), args.question_tokens, args.protocol), args.json, print_table)


if __name__ == "__main__":
    sys.exit(run_main(__doc__, add_arguments, main))
