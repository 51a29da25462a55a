"""Process reward models: one interface that scores every step of many candidates at once, with a prefix cache.

    prm = load_prm("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "rlhflow")
    prm.score(question, [["step 1", "step 2"], ["step 1", "other step 2"]])   -> [[s11, s12], [s21, s22]]
    aggregate([s11, s12], "last")                                            -> s12   (REFERENCE §3)

The model protocols (prm_protocols.py) render a candidate as text and name the token whose output scores each
step. Scoring is incremental: every scored candidate leaves an entry (its token ids, its KV, its step scores)
keyed by ``(question, steps)``; when a branch grows by a step, only the tokens after the longest cached prefix
run through the model. The question's own prefix (system prompt, question) is a shared root entry, so N fresh
candidates run it once. REFERENCE §3: search-and-learn re-scores the whole prefix every step; here the work per
step is the new step's tokens.

    cached "q|s1,s2"   [ prompt+question | s1 ...+ | s2 ...+ ]          KV of these ids (1, H, T, D) per layer
    candidate s1,s2,s3 [ prompt+question | s1 ...+ | s2 ...+ | s3 ...+ ]  forward only the last segment

Token ids are always the tokenizer's own tokenisation of the full text; a cached entry is reused only when its
ids are a prefix of the new ids, so incremental scores equal full re-scores whatever the tokenizer does.
Cached KV is bounded (``max_cache_tokens``, least recently used out first); ``release`` drops entries a search
no longer needs, and ``check_invariants`` proves the bookkeeping.
"""

from __future__ import annotations

import importlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from engine.errors import TTScaleError
from engine.kv_cache.compat import require_cache_argument, returned_cache
from engine.search.prm_protocols import PROTOCOLS, Protocol, make_protocol

AGGREGATIONS = ("last", "min", "prod", "mean")


def aggregate(scores: list[float], how: str = "last") -> float:
    """One number from a candidate's step scores: ``last`` (search-and-learn's default), ``min``, ``prod`` or ``mean``.

    Refuses an unknown aggregation and an empty score list (a candidate without steps has no score).
    """
    if how not in AGGREGATIONS:
        raise TTScaleError(f"aggregation {how!r} is unknown; use one of {', '.join(AGGREGATIONS)}")
    if len(scores) == 0:
        raise TTScaleError("aggregate: the candidate has no step scores; score at least one step before aggregating")
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    return float(sum(scores) / len(scores))


def _check_candidates(question, candidates) -> None:
    if not isinstance(question, str):
        raise TTScaleError(f"PRM.score: question must be a string, got {type(question).__name__}")
    if isinstance(candidates, str) or not all(isinstance(c, (list, tuple)) and all(isinstance(s, str) for s in c) for c in candidates):
        raise TTScaleError("PRM.score: candidates must be a list of step lists (list[list[str]]); wrap one candidate's steps in a list")


class PRM:
    """Scores the steps of candidates: ``score(question, candidates) -> one float in [0, 1] per step``.

    ``forward_tokens`` counts the tokens actually run through a model (0 for a verifier). ``release`` and
    ``clear`` drop cached prefixes; a PRM without a cache ignores them.
    """

    name = "prm"

    def __init__(self):
        self.forward_tokens = 0

    def score(self, question: str, candidates: list[list[str]]) -> list[list[float]]:  # pragma: no cover - abstract
        """One score in [0, 1] per step of each candidate (``candidates[i]`` is a list of step strings)."""
        raise NotImplementedError

    def release(self, question: str, steps_prefix: list[str] | None = None) -> int:
        """Drop cached state for ``question`` (one prefix, or all of it when ``steps_prefix`` is None); returns entries dropped."""
        return 0

    def clear(self) -> None:
        """Drop every cached prefix."""


# ─── the prefix cache (bookkeeping only; tensors are stored, never computed here) ───────────────────────────────


@dataclass
class _Entry:
    """A scored prefix: its ids (ending at its last scored token), their KV per layer (1, H, T, D), its step scores."""

    ids: tuple[int, ...]
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    scores: tuple[float, ...]


class _PrefixCache:
    """LRU map ``(question, steps | None) -> _Entry``; ``None`` steps is the question's shared root."""

    def __init__(self):
        self.entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.tokens = 0

    def get(self, key) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key, entry: _Entry) -> None:
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
class _Row:
    """One candidate to compute in this call: its ids, scored positions, and the cached entry it starts from."""

    key: tuple
    ids: tuple[int, ...]
    positions: list[int]
    shared: int                       # leading tokens that depend only on the question
    base: _Entry | None = None
    scores: list[float] = field(default_factory=list)


# ─── model PRMs ────────────────────────────────────────────────────────────────────────────────────────────────


class ModelPRM(PRM):
    """A PRM that runs a model under one of the protocols in ``prm_protocols`` (rlhflow, math-shepherd, qwen-prm).

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
        self._cache = _PrefixCache()
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
        self._cache = _PrefixCache()

    # 1. plan: tokenise, find the longest cached prefix
    def _tokenize(self, question: str, steps: tuple[str, ...]) -> tuple[tuple[int, ...], list[int], int]:
        """Ids up to the last scored token, the index of each step's scored token, and the question-only prefix length."""
        r = self.protocol.render(question, list(steps))
        enc = self.tokenizer(r.text, add_special_tokens=r.add_special_tokens, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        last_ending_at = {}
        for t, (a, b) in enumerate(offsets):
            if b > a:
                last_ending_at[b] = t
        positions = []
        for k, end in enumerate(r.ends):
            t = last_ending_at.get(end)
            if t is None or (t + 1 < len(offsets) and offsets[t + 1][0] < end) or (positions and t <= positions[-1]):
                raise TTScaleError(f"PRM protocol {self.name}: no token of this tokenizer ends where step {k + 1}'s scored token ends "
                                   f"(character {end}), so the step cannot be scored; the tokenizer merges it with the text after it")
            positions.append(t)
        shared = 0
        while shared < positions[0] and offsets[shared][1] <= r.steps_start:
            shared += 1
        return tuple(ids[: positions[-1] + 1]), positions, shared

    def _plan(self, question: str, steps: tuple[str, ...]) -> _Row:
        ids, positions, shared = self._tokenize(question, steps)
        row = _Row(key=(question, steps), ids=ids, positions=positions, shared=shared)
        for j in range(len(steps) - 1, 0, -1):
            entry = self._cache.get((question, steps[:j]))
            if entry is not None and len(entry.ids) <= positions[j] and ids[: len(entry.ids)] == entry.ids:
                row.base, row.scores = entry, list(entry.scores)
                break
        return row

    def _attach_root(self, question: str, fresh: list[_Row]) -> None:
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
        root = _Entry(ids=first[:length], kv=[], scores=())
        self._run([_Row(key=(question, None), ids=root.ids, positions=[], shared=0)], store=False, into=root)
        self._cache.put((question, None), root)
        for r in rest:
            r.base = root

    # 2. run: batched forward of the new tokens on top of each row's cached prefix
    def _run(self, rows: list[_Row], store: bool = True, into: _Entry | None = None) -> None:
        rows = sorted(rows, key=lambda r: len(r.ids), reverse=True)
        for at in range(0, len(rows), self.batch_size):
            self._forward_chunk(rows[at : at + self.batch_size], store, into)

    def _forward_chunk(self, chunk: list[_Row], store: bool, into: _Entry | None) -> None:
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
                self._cache.put(r.key, _Entry(ids=r.ids, kv=kv, scores=tuple(r.scores)))

    def _batch_cache(self, chunk: list[_Row], past: list[int], P: int):
        """A DynamicCache holding each row's cached prefix, left-padded to ``P`` (padding is masked out)."""
        from transformers import DynamicCache

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

    def _probs(self, selected: torch.Tensor) -> torch.Tensor:
        """(M, H) hidden states or (M, 2) head logits at scored tokens -> (M,) step scores in [0, 1]."""
        if self.protocol.head == "lm":
            logits = torch.nn.functional.linear(selected, self._label_weight, self._label_bias).float()   # (M, 2)
            if self._softcap:
                logits = torch.tanh(logits / self._softcap) * self._softcap
            return logits.softmax(-1)[:, 0]                                  # P("+") renormalised over {"+", "-"}
        if selected.shape[-1] != 2:
            raise TTScaleError(f"PRM protocol {self.name} needs a 2-way head, and this model outputs {selected.shape[-1]} values per token")
        return selected.float().softmax(-1)[:, 1]                            # positive-class probability

    # 3. score: the public entry point
    def score(self, question, candidates):
        """Scores for every step of every candidate (same order), computing only tokens no cached prefix covers.

        Each step is stripped of surrounding whitespace and of the protocol's tags. Identical candidates in one
        call are computed once. Refuses malformed candidates and text whose scored tokens cannot be located.
        """
        _check_candidates(question, candidates)
        out: list[list[float] | None] = [None] * len(candidates)
        todo: dict[tuple, _Row] = {}
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


# ─── programmatic verifiers ────────────────────────────────────────────────────────────────────────────────────


class VerifierPRM(PRM):
    """Steps checked exactly by a Python callable ``fn(question, steps) -> one float/bool per step``."""

    def __init__(self, fn, name: str | None = None):
        super().__init__()
        if not callable(fn):
            raise TTScaleError(f"verifier {name or fn!r} is not callable (it is a {type(fn).__name__}); give a function")
        self.fn, self.name = fn, name or getattr(fn, "__name__", "verifier")

    @classmethod
    def from_spec(cls, spec: str) -> "VerifierPRM":
        """Load ``module:function``; refuses a malformed spec, a module that cannot be imported, a missing or non-callable name."""
        if not isinstance(spec, str) or spec.count(":") != 1 or not all(part.strip() for part in spec.split(":")):
            raise TTScaleError(f"verifier {spec!r} must be written module:function, e.g. engine.search.verifiers:arithmetic")
        module_name, fn_name = (part.strip() for part in spec.split(":"))
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's module, reported in one sentence
            raise TTScaleError(f"verifier {spec}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); make it importable from this Python") from exc
        if not hasattr(module, fn_name):
            raise TTScaleError(f"verifier {spec}: module {module_name!r} has no attribute {fn_name!r}; check the function name")
        fn = getattr(module, fn_name)
        if not callable(fn):
            raise TTScaleError(f"verifier {spec}: {fn_name!r} is a {type(fn).__name__}, not a function; point at a callable")
        return cls(fn, name=spec)

    def score(self, question, candidates):
        """The callable's scores as floats; refuses a result that is not one number (or bool) per step."""
        _check_candidates(question, candidates)
        out = []
        for steps in candidates:
            scores = self.fn(question, list(steps)) if steps else []
            if not isinstance(scores, (list, tuple)) or len(scores) != len(steps) or \
                    not all(isinstance(s, (bool, int, float)) for s in scores):
                raise TTScaleError(f"verifier {self.name} returned {scores!r} for {len(steps)} steps; it must return one score (float or bool) per step")
            out.append([float(s) for s in scores])
        return out


# ─── loading ───────────────────────────────────────────────────────────────────────────────────────────────────


def _load_classifier(spec: str, trust_remote_code: bool, dtype: str, device: str):
    """A model with a per-token 2-way head (Qwen2.5-Math-PRM's own code, or any *ForTokenClassification) and its tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

    from engine.models import pick_device, pick_dtype, resolve_model

    kind, where = resolve_model(spec)
    if kind == "gguf":
        raise TTScaleError(f"--prm {spec}: a GGUF file holds a causal LM, not a PRM with a 2-way head; give the PRM's directory or hub id")
    dev = pick_device(device)
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
        remote = "AutoModel" in (getattr(config, "auto_map", None) or {})
        if remote and not trust_remote_code:
            raise TTScaleError(f"--prm {spec}: the qwen-prm protocol loads this model's own PRM head code (AutoModel with remote code); "
                               "pass trust_remote_code=True (--trust-remote-code) if you trust its repository")
        kwargs = dict(dtype=pick_dtype(dtype, dev), trust_remote_code=trust_remote_code)
        if remote:
            model = AutoModel.from_pretrained(where, **kwargs)
        elif any(a.endswith("ForTokenClassification") for a in (config.architectures or [])):
            model = AutoModelForTokenClassification.from_pretrained(where, **kwargs)
        else:
            raise TTScaleError(f"--prm {spec}: the qwen-prm protocol needs a 2-way per-token head (Qwen2.5-Math-PRM's code or a "
                               f"*ForTokenClassification model), and this model is {config.architectures}")
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    except OSError as exc:
        hint = " (this machine may have no network: give a local directory)" if kind == "hub" else ""
        raise TTScaleError(f"--prm {spec}: could not load it{hint}: {str(exc).splitlines()[0]}") from exc
    return model.to(dev).eval(), tokenizer


def load_prm(spec: str, protocol: str, trust_remote_code: bool = False, *, dtype: str = "auto", device: str = "auto",
             batch_size: int = 8, max_cache_tokens: int = 32768) -> PRM:
    """A PRM from a hub id or local path under ``protocol`` (rlhflow, math-shepherd, qwen-prm), or ``verifier``
    with ``spec`` = ``module:function``.

    Causal-LM protocols load through ``engine.models.load_model``; qwen-prm loads Qwen2.5-Math-PRM's own code
    only when ``trust_remote_code`` is set (or a local *ForTokenClassification model). Refuses unknown protocols,
    remote code without permission, models that cannot be loaded and tokenizers without the protocol's tokens.
    """
    if protocol == "verifier":
        return VerifierPRM.from_spec(spec)
    if protocol not in PROTOCOLS:
        raise TTScaleError(f"PRM protocol {protocol!r} is unknown; use one of {', '.join(PROTOCOLS)} or verifier")
    if PROTOCOLS[protocol].head == "lm":
        from engine.models import load_model

        loaded = load_model(spec, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        model, tokenizer = _load_classifier(spec, trust_remote_code, dtype, device)
    return ModelPRM(model, tokenizer, protocol, batch_size=batch_size, max_cache_tokens=max_cache_tokens)
