"""Process reward models: one interface that scores every step of many candidates at once, on a shared prefix cache.

    prm = load_prm("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "rlhflow")
    prm.score(question, [["step 1", "step 2"], ["step 1", "other step 2"]])   -> [[s11, s12], [s21, s22]]
    aggregate([s11, s12], "last")                                            -> s12   (REFERENCE §3)

The model protocols (prm_protocols.py) render a candidate as text and name the token whose output scores each
step. Scoring is incremental, and its KV lives in the project's prefix-sharing cache (``engine.kv_cache``'s
``KVCacheManager``): every scored candidate leaves an *entry* keyed by ``(question, steps)`` — its token ids, a
manager branch that pins their KV, its step scores. The question's own prefix (system prompt, question) is a
root entry ``(question, None)``. Branches share storage, so the question and the steps candidates have in
common are held once, however many candidates extend them:

    tree in the manager                                  entries (handles on it)
    [ prompt+question ]                                  (q, None)            root
     +-- [ s1 ...+ | s2 ...+ ]                           (q, (s1, s2))
          +-- [ s3a ...+ ]                               (q, (s1, s2, s3a))
          +-- [ s3b ...+ ]                               (q, (s1, s2, s3b))

One ``score`` call, in three phases:
  1. plan: tokenise each new candidate; its *base* is the longest cached entry of one of its step prefixes whose
     ids are a prefix of its ids (else the question's root, prefilled once for all fresh candidates);
  2. grow: candidates on the same base are laid out as a radix tree of their remaining ids; each segment (a run
     of tokens some candidates share) is forked from its parent and run once with ``KVCacheManager.extend``,
     which returns the model's output at the segment's scored tokens; segments of one depth run together;
  3. keep: each candidate's branch becomes its entry; least recently used entries are released until the
     manager stores at most ``max_cache_tokens`` distinct tokens (0: nothing survives the call).

    candidate s1,s2,s3 [ prompt+question | s1 ...+ | s2 ...+ | s3 ...+ ]   fork (q, (s1, s2)), run only the last segment

lm protocols run the decoder body (``model.base_model``: the manager returns hidden states) and apply the two
label rows of the output head themselves; qwen-prm runs the token classifier (the manager returns its 2-way
logits). REFERENCE §3: search-and-learn re-scores the whole prefix every step; here the work per step is the new
step's tokens, and the memory per candidate is its own tokens.

Token ids are always the tokenizer's own tokenisation of the full text; a cached entry is reused only when its
ids are a prefix of the new ids, so incremental scores equal full re-scores whatever the tokenizer does.
``release`` drops entries a search no longer needs, and ``check_invariants`` proves the bookkeeping.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

from engine.errors import TTScaleError
from engine.kv_cache import Branch, KVCacheManager
from engine.kv_cache.compat import require_cache_argument
from engine.models import load_model, pick_device, pick_dtype, resolve_model
from engine.search.config import AGGREGATIONS
from engine.search.prm_protocols import PROTOCOLS, Protocol, make_protocol


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


# ─── entries: handles on the manager's tree (bookkeeping only; the manager owns the KV) ─────────────────────────


@dataclass
class _Entry:
    """A scored prefix: its ids (ending at its last scored token), the branch pinning their KV, its step scores."""

    ids: tuple[int, ...]
    branch: Branch
    scores: tuple[float, ...]


class _Entries:
    """LRU map ``(question, steps | None) -> _Entry`` over one manager; ``None`` steps is the question's shared root.

    Ownership (STYLE §6): an entry owns its branch; dropping the entry is the only place that branch is released,
    and the tokens go back only when no other entry's branch shares them. ``tokens`` is the manager's count of
    distinct stored tokens, the figure ``max_cache_tokens`` bounds.
    """

    def __init__(self, manager: KVCacheManager):
        self.manager = manager
        self.entries: OrderedDict[tuple, _Entry] = OrderedDict()

    @property
    def tokens(self) -> int:
        return self.manager.stats().tree_tokens

    def get(self, key) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key, entry: _Entry) -> None:
        self.pop(key)
        self.entries[key] = entry

    def detach(self, key) -> _Entry | None:
        """Take an entry out of the map without releasing its branch (the caller releases it when done with it)."""
        return self.entries.pop(key, None)

    def pop(self, key) -> bool:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.manager.release(entry.branch)
        return entry is not None

    def evict(self, max_tokens: int) -> None:
        while self.entries and self.tokens > max_tokens:
            self.pop(next(iter(self.entries)))

    def clear(self) -> None:
        while self.entries:
            self.pop(next(iter(self.entries)))

    def check_invariants(self) -> None:
        self.manager.check_invariants()
        assert self.manager.stats().branches == len(self.entries), \
            f"the manager holds {self.manager.stats().branches} branches for {len(self.entries)} entries: a branch leaked"
        for (_question, steps), e in self.entries.items():
            assert len(e.scores) == (0 if steps is None else len(steps)), f"entry {steps!r} has {len(e.scores)} scores"
            assert e.branch.alive and tuple(e.branch.token_ids) == e.ids, f"entry {steps!r}: its branch does not hold its ids"


@dataclass
class _Row:
    """One candidate to compute in this call: its ids, scored positions, the cached entry it starts from, its branch."""

    key: tuple
    ids: tuple[int, ...]
    positions: list[int]
    shared: int                       # leading tokens that depend only on the question
    base: _Entry | None = None
    scores: list[float] = field(default_factory=list)
    branch: Branch | None = None      # set by _grow: pins the row's ids


@dataclass
class _Segment:
    """Tokens ``ids[start:end]`` that every row in ``rows`` shares, run once on top of ``parent`` (depths start..end-1)."""

    parent: Branch
    start: int
    end: int
    rows: list[_Row]
    branch: Branch | None = None      # the parent forked and extended by the segment


# ─── model PRMs ────────────────────────────────────────────────────────────────────────────────────────────────


class ModelPRM(PRM):
    """A PRM that runs a model under one of the protocols in ``prm_protocols`` (rlhflow, math-shepherd, qwen-prm).

    ``model`` is a causal LM for ``lm`` protocols or a model with a 2-way per-token head for ``qwen-prm``; its
    KV lives in a :class:`~engine.kv_cache.KVCacheManager` over the decoder body (lm) or the whole classifier.
    ``batch_size`` rows run per forward; ``max_cache_tokens`` bounds the distinct tokens the manager keeps
    between calls (LRU entries out first; 0 keeps nothing). Refuses an unknown protocol, tokenizers without the
    protocol's tokens, a causal-LM protocol on a model without an output embedding, a model whose forward takes
    no cache, and an architecture the manager refuses (``engine.kv_cache.support``).
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
        self.reused_tokens = 0        # tokens of scored candidates served from stored KV instead of being run
        # lm protocols run the decoder body and apply two rows of the head themselves; qwen-prm runs the whole model.
        self._body = model.base_model if self.protocol.head == "lm" else model
        require_cache_argument(self._body)
        if self.protocol.head == "lm":
            head = model.get_output_embeddings()
            if head is None or not hasattr(head, "weight"):
                raise TTScaleError(f"PRM protocol {protocol} reads next-token logits, and this model has no output embedding (is it a causal LM?)")
            ids = torch.tensor(self.protocol.label_ids, device=head.weight.device)
            self._label_weight = head.weight.detach()[ids]                                        # (2, H)
            bias = getattr(head, "bias", None)
            self._label_bias = None if bias is None else bias.detach()[ids]
            self._softcap = getattr(model.config, "final_logit_softcapping", None)
        self._mgr = KVCacheManager(self._body)
        self._cache = _Entries(self._mgr)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        return next(self.model.parameters()).device

    @property
    def cached_tokens(self) -> int:
        """Distinct tokens whose KV the manager holds now (a prefix shared by many entries counts once)."""
        return self._cache.tokens

    def kv_stats(self):
        """The manager's :class:`~engine.kv_cache.KVStats` (``memory_bytes``: KV bytes held now)."""
        return self._mgr.stats()

    def check_invariants(self) -> None:
        """Assert the entries, their branches and the manager agree, and the cache is within ``max_cache_tokens``."""
        self._cache.check_invariants()
        assert self._cache.tokens <= self.max_cache_tokens, "cache over its token bound"

    def release(self, question, steps_prefix=None):
        """Drop the cached entry of ``steps_prefix`` (or every entry of ``question``, root included); returns entries dropped.

        Tokens another entry still shares stay stored; the rest go back to the manager.
        """
        if steps_prefix is None:
            keys = [k for k in self._cache.entries if k[0] == question]
        else:
            keys = [(question, tuple(self.protocol.clean(s) for s in steps_prefix))]
        return sum(self._cache.pop(k) for k in keys)

    def clear(self):
        """Drop every cached prefix (``forward_tokens`` keeps counting)."""
        self._cache.clear()

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

    def _attach_root(self, question: str, fresh: list[_Row]) -> _Entry | None:
        """Start candidates with no cached step prefix from the question's root entry, prefilling it once if needed.

        Returns the previous root when a new one replaced it: rows of this call may still fork from it, so the
        caller releases it after ``_grow``.
        """
        root = self._cache.get((question, None))
        usable = lambda e, r: len(e.ids) <= r.shared and r.ids[: len(e.ids)] == e.ids  # noqa: E731
        rest = []
        for r in fresh:
            if root is not None and usable(root, r):
                r.base = root
            else:
                rest.append(r)
        if not rest:
            return None
        first, common = rest[0].ids, min(len(r.ids) for r in rest)
        for r in rest[1:]:
            common = next((t for t in range(common) if r.ids[t] != first[t]), common)
        # The root is question-only (reusable by any first step); failing that, anything before the first scored token.
        length = min(common, min(r.shared for r in rest)) or min(common, min(r.positions[0] for r in rest))
        if length < 1:
            raise TTScaleError(f"PRM protocol {self.name}: these candidates share no token before their first scored token, "
                               "so they have no prefix to start from; check the question renders to some text before the steps")
        stale = self._cache.detach((question, None))
        root = _Entry(ids=first[:length], branch=self._mgr.prefill(list(first[:length])), scores=())
        self._cache.put((question, None), root)
        for r in rest:
            r.base = root
        return stale

    # 2. grow: every row from its base, each distinct run of tokens computed once
    def _grow(self, rows: list[_Row]) -> None:
        """Extend each row's base to the row's ids, as a radix tree: rows that share tokens share one segment.

            base [ ... ]  rows a = base+xyzP, b = base+xyzQR, c = base+W
            wave 1:  [x y z]  (a, b)     [W] (c)        forks of base, one batched extend
            wave 2:  [P] (a)  [Q R] (b)                  forks of [x y z], which is then released

        Scores are appended to each row in depth order; on failure every branch this call made is released.
        """
        groups: dict[int, tuple[_Entry, list[_Row]]] = {}
        for r in rows:
            groups.setdefault(id(r.base), (r.base, []))[1].append(r)
        wave = [(base.branch, len(base.ids), group, False) for base, group in groups.values()]  # (parent, depth, rows, temporary)
        temps: list[Branch] = []        # segment branches this call made; released once their children pin the tokens
        try:
            while wave:
                segments = []
                for parent, start, group, _ in wave:
                    by_next: dict[int, list[_Row]] = {}
                    for r in group:
                        by_next.setdefault(r.ids[start], []).append(r)
                    for same in by_next.values():
                        end = min(len(r.ids) for r in same)
                        end = next((t for t in range(start + 1, end) if any(r.ids[t] != same[0].ids[t] for r in same)), end)
                        segments.append(_Segment(parent, start, end, same))
                self._run(segments, temps)
                self._mgr.release([parent for parent, _, _, temporary in wave if temporary])  # forked: children pin it now
                wave = []
                for seg in segments:
                    rest = [r for r in seg.rows if len(r.ids) > seg.end]
                    for r in seg.rows:
                        if len(r.ids) == seg.end:
                            r.branch = self._mgr.fork(seg.branch, 1)[0]
                    if rest:
                        wave.append((seg.branch, seg.end, rest, True))
                    else:
                        self._mgr.release(seg.branch)
                temps = [b for b in temps if b.alive]
        except BaseException:
            self._mgr.release([b for b in temps + [r.branch for r in rows if r.branch is not None] if b.alive])
            for r in rows:
                r.branch = None
            raise

    def _run(self, segments: list[_Segment], temps: list[Branch]) -> None:
        """Fork each segment's parent and run the segment's tokens, ``batch_size`` segments per ``extend``; score rows."""
        order = sorted(segments, key=lambda s: s.end - s.start, reverse=True)
        for at in range(0, len(order), self.batch_size):
            chunk = order[at : at + self.batch_size]
            kids = [self._mgr.fork(s.parent, 1)[0] for s in chunk]
            temps.extend(kids)
            need = [sorted({p for r in s.rows for p in r.positions if s.start <= p < s.end}) for s in chunk]
            outs = self._mgr.extend(kids, [list(s.rows[0].ids[s.start : s.end]) for s in chunk], need)  # (len(need[i]), H or 2)
            for s, kid, ps, out in zip(chunk, kids, need, outs):
                s.branch = kid
                if not ps:
                    continue
                by_depth = dict(zip(ps, self._probs(out).tolist()))
                for r in s.rows:
                    r.scores += [by_depth[p] for p in r.positions if s.start <= p < s.end]

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
        call are computed once, and so are the tokens candidates share. Refuses malformed candidates and text
        whose scored tokens cannot be located.
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
        if todo:
            rows, computed = list(todo.values()), self._mgr.stats().tokens_computed
            stale = self._attach_root(question, [r for r in rows if r.base is None])
            try:
                self._grow(rows)
            finally:
                if stale is not None:
                    self._mgr.release(stale.branch)
            for r in rows:
                self._cache.put(r.key, _Entry(ids=r.ids, branch=r.branch, scores=tuple(r.scores)))
            ran = self._mgr.stats().tokens_computed - computed
            self.forward_tokens += ran
            self.reused_tokens += sum(len(r.ids) for r in rows) - ran
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
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins without a signature: checked when called
            signature = None
        if signature is not None:
            try:
                signature.bind("question", ["step"])
            except TypeError as exc:
                raise TTScaleError(f"verifier {self.name} must take (question, steps) and return one score per step; its "
                                   f"signature is {self.name.split(':')[-1]}{signature} ({exc})") from exc

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
        """The callable's scores as floats, each checked before use.

        Refuses, in one sentence naming the verifier and the question, a call that raises, a result that is not one
        number (or bool) per step, and scores that are NaN, infinite or outside [0, 1] (the PRM contract).
        """
        _check_candidates(question, candidates)
        out = []
        for steps in candidates:
            try:
                scores = self.fn(question, list(steps)) if steps else []
            except Exception as exc:  # noqa: BLE001 - the user's function failed: one sentence, not their traceback
                raise TTScaleError(f"verifier {self.name} raised {type(exc).__name__}: {exc} on question {_short(question)} "
                                   f"with {len(steps)} step(s); fix the function (it must not raise on any step text)") from exc
            values = _step_scores(f"verifier {self.name}", question, steps, scores, "")
            out.append(values)
        return out


def check_scores(prm: PRM, question: str, candidates: list[list[str]], scores) -> list[list[float]]:
    """Validate what any PRM's ``score`` returned before a search uses it: one list per candidate, one finite score in
    [0, 1] per step. Refuses anything else in one sentence naming the PRM (a custom PRM or a broken model)."""
    who = getattr(prm, "name", type(prm).__name__)
    if not isinstance(scores, (list, tuple)) or len(scores) != len(candidates):
        raise TTScaleError(f"PRM {who} returned {_short(scores)} for {len(candidates)} candidates of question {_short(question)}; "
                           "it must return one list of step scores per candidate")
    return [_step_scores(f"PRM {who}", question, steps, row, " (a NaN usually means the model overflowed: try --dtype float32)")
            for steps, row in zip(candidates, scores)]


def _step_scores(who: str, question: str, steps, row, nan_hint: str) -> list[float]:
    """One candidate's scores as floats; refuses anything but one finite number (or bool) in [0, 1] per step."""
    if isinstance(row, (str, bytes)) or not hasattr(row, "__len__") or len(row) != len(steps) or \
            not all(isinstance(v, (bool, int, float)) for v in row):
        raise TTScaleError(f"{who} returned {_short(row)} for {len(steps)} steps of question {_short(question)}; it must "
                           "return one score (float or bool) per step")
    values = [float(v) for v in row]
    bad = next((v for v in values if not math.isfinite(v) or not 0.0 <= v <= 1.0), None)
    if bad is not None:
        raise TTScaleError(f"{who} returned the score {bad} for question {_short(question)}; scores must be finite numbers "
                           f"in [0, 1]{nan_hint}")
    return values


def _short(value, limit: int = 60) -> str:
    """``repr`` of a value cut to ``limit`` characters, for error sentences."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ─── loading ───────────────────────────────────────────────────────────────────────────────────────────────────


def _load_classifier(spec: str, trust_remote_code: bool, dtype: str, device: str):
    """A model with a per-token 2-way head (Qwen2.5-Math-PRM's own code, or any *ForTokenClassification) and its tokenizer."""
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
    try:
        if PROTOCOLS[protocol].head == "lm":
            loaded = load_model(spec, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
            model, tokenizer = loaded.model, loaded.tokenizer
        else:
            model, tokenizer = _load_classifier(spec, trust_remote_code, dtype, device)
    except TTScaleError as exc:  # the loaders speak of --model; here the user gave --prm
        message = str(exc)
        raise TTScaleError("--prm " + message[len("--model "):] if message.startswith("--model ") else message) from exc
    return ModelPRM(model, tokenizer, protocol, batch_size=batch_size, max_cache_tokens=max_cache_tokens)
