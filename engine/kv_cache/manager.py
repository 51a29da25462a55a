"""KVCacheManager: prefill once, fork without copying, decode branches of different depths in one forward.

    mgr = KVCacheManager(model)
    root = mgr.prefill(prompt_ids)               # root.logits: (V,) next-token logits after the prompt
    kids = mgr.fork(root, 4); mgr.release(root)  # 4 handles on the same stored prompt; nothing copied
    logits = mgr.decode(kids, [[t1], [t2, t3], [t4], [t5]])   # (4, V), one forward, branches may differ in depth
    mgr.release(kids[1]); mgr.stats().memory_bytes           # memory of what only kids[1] held is back
    outs = mgr.extend([kids[0]], [[t6, t7, t8]], positions=[[d, d + 2]])   # [(2, D)]: outputs at depths d, d+2

``extend`` is ``decode`` that also returns the model's per-token output at chosen depths of the new tokens, for
callers that score several tokens per row (a PRM reads every step's scored token). The output is whatever the
model computes per token (``ModelLayout.output``): next-token logits of a causal LM, the 2-way logits of a token
classifier, or the hidden state of a decoder body that has no head (``causal_lm.base_model``):

    branch: [ stored: depths 0 .. n-1 | new tokens: depths n .. n+m-1 ]
                                         positions ⊂ [n, n+m)  -> (len(positions), D) rows of the output

The phases of one ``decode``:
  1. validate handles and tokens (all of them, before anything changes);
  2. allocate one slot per new token (refused here if ``max_tokens`` would be exceeded);
  3. plan rows (slot paths from the tree, masks, positions) and run the model once per row group;
  4. commit the new tokens to the tree, or on any error give the slots back, so a failed call changes nothing.

Rows whose new-token counts differ a lot are split into a few forwards (``_row_groups``) so that right padding
never more than doubles the work; ``stats().padding_tokens`` shows what padding cost.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from engine.errors import TTScaleError
from engine.kv_cache.cache import TreeCache
from engine.kv_cache.plan import RowSpec, build_plan
from engine.kv_cache.slots import SlotAllocator
from engine.kv_cache.storage import KVStorage
from engine.kv_cache.support import inspect_model
from engine.kv_cache.tree import SegmentTree


@dataclass(frozen=True)
class KVStats:
    """Memory held and work done by a manager; all counts are tokens unless the name says bytes."""

    memory_bytes: int      # KV bytes of the tokens stored now (tree_tokens x bytes_per_token)
    reserved_bytes: int    # bytes of pool tensors allocated now (>= memory_bytes; free slots included)
    peak_bytes: int        # most pool bytes ever allocated at once
    bytes_per_token: int   # keys + values of one token over all layers
    tree_tokens: int       # distinct tokens stored now; a shared prefix counts once
    tokens_stored: int     # tokens ever inserted into the tree (cumulative)
    tokens_computed: int   # real token positions the model ran (cumulative); equals tokens_stored by design
    padding_tokens: int    # padded positions the model also ran (cumulative)
    forwards: int          # model forward calls
    branches: int          # live branch handles
    nodes: int             # live tree segments

    @property
    def forward_tokens(self) -> int:
        """All positions the model ran, padding included."""
        return self.tokens_computed + self.padding_tokens


class Branch:
    """A handle on one sequence in the manager's tree. Cheap; holds no tensors besides its last logits.

    ``logits`` is the model's (D,) output at the branch's last token (shared with the branch it was forked from),
    or None after ``truncate``: the next-token logits of a causal LM, or the hidden state of a decoder body (see
    :mod:`engine.kv_cache.support`). A released branch is dead: every use of it is refused.
    """

    __slots__ = ("_manager", "id", "logits")

    def __init__(self, manager: KVCacheManager, bid: int, logits: torch.Tensor | None):
        self._manager, self.id, self.logits = manager, bid, logits

    @property
    def alive(self) -> bool:
        """False once the branch was released."""
        return self._manager._tree.is_live(self.id)

    @property
    def token_ids(self) -> list[int]:
        """The full sequence, prompt included."""
        return self._manager._tree.tokens(self.id)

    @property
    def length(self) -> int:
        """Number of tokens in the sequence, prompt included."""
        return self._manager._tree.length(self.id)

    def __repr__(self) -> str:
        return f"Branch(id={self.id}, length={self.length})" if self.alive else f"Branch(id={self.id}, released)"


class KVCacheManager:
    """Prefix-sharing KV cache over a stock transformers causal LM (or a token classifier, or a decoder body).

    Refuses (``TTScaleError``), at construction, architectures it cannot serve (see
    :mod:`engine.kv_cache.support`) and models whose forward ignores the tree's masks or positions (a short
    self-check against a plain forward; ``self_check=False`` skips it). ``max_tokens`` caps the distinct tokens
    stored; a call that would pass it is refused and changes nothing. Prompts longer than ``prefill_chunk`` are
    prefilled in chunks of that many tokens, which bounds the 4-D mask at ``prefill_chunk x prompt length``.
    """

    def __init__(self, model, max_tokens: int | None = None, self_check: bool = True, prefill_chunk: int = 1024):
        if not isinstance(prefill_chunk, int) or prefill_chunk < 1:
            raise TTScaleError(f"prefill_chunk must be a positive int, got {prefill_chunk!r}; the default 1024 suits most prompts")
        self.model = model
        self.prefill_chunk = prefill_chunk
        self.layout = inspect_model(model)
        self._alloc = SlotAllocator(max_tokens)
        self._tree = SegmentTree(self._alloc)
        self._storage = KVStorage(len(self.layout.layer_kinds))
        self._computed = self._padding = self._forwards = 0
        if self_check:
            self._self_check()

    # ------------------------------------------------------------------ public API

    def prefill(self, prompt_ids: Sequence[int] | torch.Tensor) -> Branch:
        """Run the prompt once, store it as a new root, and return a branch whose ``logits`` follow the prompt.

        Refuses an empty prompt or ids outside the vocabulary.
        """
        tokens = self._token_list(prompt_ids, "prompt_ids")
        first, rest = tokens[: self.prefill_chunk], tokens[self.prefill_chunk:]
        slots = self._alloc.alloc(len(first))
        work = [0, 0, 0]
        try:
            logits = self._run([RowSpec([], first, slots)], work)[0]  # (1, D)
        except BaseException:
            self._give_back(slots)
            raise
        self._count(work)
        root = Branch(self, self._tree.new_root(first, slots), logits[0])
        try:
            for at in range(0, len(rest), self.prefill_chunk):
                self.decode([root], [rest[at: at + self.prefill_chunk]])
        except BaseException:
            self.release(root)
            raise
        return root

    def fork(self, branch: Branch, n: int) -> list[Branch]:
        """Return ``n`` new branches that share everything ``branch`` holds (no copy); ``branch`` stays live.

        Release ``branch`` yourself if only the children are wanted. Refuses ``n < 1``.
        """
        bid = self._bid(branch, "branch")
        if not isinstance(n, int) or n < 1:
            raise TTScaleError(f"fork(n={n!r}) needs a positive int number of children")
        return [Branch(self, kid, branch.logits) for kid in self._tree.fork(bid, n)]

    def decode(self, branches: Sequence[Branch], tokens) -> torch.Tensor:
        """Append tokens to each branch and return the next-token logits after each branch's last new token.

        ``tokens`` is one list of ids per branch (lengths may differ, at least one each), or one id per branch
        (a list of ints or a 1-D tensor). Returns ``(len(branches), V)`` logits and sets each ``branch.logits``.
        Refuses dead or foreign branches, a branch listed twice, empty token lists and out-of-vocabulary ids.
        """
        branches = list(branches)
        bids = self._bids(branches, "decode")
        return self._append(branches, bids, self._token_lists(tokens, len(bids)), None)[0]

    def extend(self, branches: Sequence[Branch], tokens, positions: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Append tokens like ``decode`` and return the model's output at chosen depths of each branch's new tokens.

        ``positions[i]`` lists depths in branch i's sequence (0 = its first token) that lie among its new tokens,
        ``branch.length <= d < branch.length + len(tokens[i])``, in any order, possibly empty. Returns one
        ``(len(positions[i]), D)`` tensor per branch (D: vocabulary, labels or hidden size, see the module
        docstring) and sets each ``branch.logits`` as ``decode`` does. The model runs without ``logits_to_keep``
        (every position's output is computed, then the chosen rows are kept). Refuses what ``decode`` refuses, a
        ``positions`` list of the wrong length, and depths that are not ints among the new tokens; nothing changes then.
        """
        branches = list(branches)
        bids = self._bids(branches, "extend")
        new = self._token_lists(tokens, len(bids))
        positions = list(positions)
        if len(positions) != len(bids):
            raise TTScaleError(f"extend got {len(bids)} branches but {len(positions)} position lists; give one list (maybe empty) per branch")
        offsets = []
        for i, (bid, t, ps) in enumerate(zip(bids, new, positions)):
            n, row = self._tree.length(bid), []
            for d in ps:
                d = _as_id(d)
                if d is None or not n <= d < n + len(t):
                    raise TTScaleError(f"positions[{i}] holds {d!r}, which is not a depth of branch {bid}'s new tokens [{n}, {n + len(t)}); "
                                       "only tokens this call runs can be read")
                row.append(d - n)
            offsets.append(row)
        return self._append(branches, bids, new, offsets)[1]

    def truncate(self, branch: Branch, length: int) -> None:
        """Cut ``branch`` back to its first ``length`` tokens (e.g. a step boundary); cheap, nothing is recomputed.

        Memory that only this branch held is freed; other branches are untouched. ``branch.logits`` becomes None
        (the next ``decode`` on it must bring at least one token). Refuses ``length`` outside 1..branch.length.
        """
        self._tree.truncate(self._bid(branch, "branch"), length)
        branch.logits = None
        self._storage.resize(self._alloc.capacity)

    def release(self, branches: Branch | Iterable[Branch]) -> None:
        """Drop one branch or several; segments nothing else pins are freed and the pool shrinks when it can.

        Refuses a branch that is already released (all are checked before any is dropped).
        """
        items = [branches] if isinstance(branches, Branch) else list(branches)
        bids = [self._bid(b, f"branches[{i}]") for i, b in enumerate(items)]
        if len(set(bids)) != len(bids):
            raise TTScaleError("release(branches=...) lists the same branch twice; release each branch once")
        for b, bid in zip(items, bids):
            self._tree.release(bid)
            b.logits = None
        self._storage.resize(self._alloc.capacity)

    def stats(self) -> KVStats:
        """Memory held now, peak memory, and tokens computed versus tokens stored."""
        bpt = self._storage.bytes_per_token
        return KVStats(
            memory_bytes=self._tree.num_tokens * bpt,
            reserved_bytes=self._storage.reserved_bytes,
            peak_bytes=self._storage.peak_bytes,
            bytes_per_token=bpt,
            tree_tokens=self._tree.num_tokens,
            tokens_stored=self._tree.tokens_stored,
            tokens_computed=self._computed,
            padding_tokens=self._padding,
            forwards=self._forwards,
            branches=self._tree.num_branches,
            nodes=self._tree.num_nodes,
        )

    def check_invariants(self) -> None:
        """Assert the tree, the slot accounting and the pool sizes agree (``AssertionError`` otherwise)."""
        self._tree.check_invariants()
        assert self._storage.capacity == self._alloc.capacity, f"pool holds {self._storage.capacity} slots, allocator {self._alloc.capacity}"
        assert self._computed == self._tree.tokens_stored, f"computed {self._computed} tokens but stored {self._tree.tokens_stored}"

    # ------------------------------------------------------------------ helpers

    def _append(self, branches: list[Branch], bids: list[int], new: list[list[int]],
                read: list[list[int]] | None) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Phases 2-4 of the module docstring for validated rows; returns (B, D) last outputs and, with ``read``
        (offsets into each row's new tokens), one (len(read[i]), D) tensor per row."""
        slots = self._alloc.alloc(sum(map(len, new)))
        per_row, at = [], 0
        for t in new:
            per_row.append(slots[at: at + len(t)])
            at += len(t)
        work = [0, 0, 0]
        try:
            rows = [RowSpec(self._tree.slots(bid), t, s) for bid, t, s in zip(bids, new, per_row)]
            out, picked = None, [None] * len(bids)
            for group in _row_groups([len(t) for t in new]):
                logits, got = self._run([rows[i] for i in group], work, None if read is None else [read[i] for i in group])  # (len(group), D)
                if out is None:
                    out = logits.new_empty((len(bids), logits.shape[-1]))
                out[group] = logits
                for i, g in zip(group, got or []):
                    picked[i] = g
        except BaseException:
            self._give_back(slots)
            raise
        self._count(work)
        for i, (bid, t, s) in enumerate(zip(bids, new, per_row)):
            self._tree.append(bid, t, s)
            branches[i].logits = out[i]
        return out, None if read is None else picked

    def _run(self, rows: list[RowSpec], work: list[int], read: list[list[int]] | None = None) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """One forward over ``rows``; returns (B, D) outputs at each row's last new token and, with ``read`` (offsets
        into each row's new tokens), one (len(read[i]), D) tensor of outputs at those offsets per row.

        Adds [real tokens, padded positions, 1] to ``work``; the caller counts it only if the call commits.
        """
        lay = self.layout
        plan = build_plan(rows, lay.windows, lay.dtype, lay.device)
        self._storage.resize(self._alloc.capacity)
        cache = TreeCache(self._storage, list(lay.layer_kinds), plan)
        mask = plan.masks if lay.mask_as_dict else next(iter(plan.masks.values()))
        kwargs = dict(input_ids=plan.input_ids, position_ids=plan.position_ids, attention_mask=mask,
                      use_cache=True, **{lay.cache_argument: cache})  # the name compat read off this model's forward
        if lay.takes_logits_to_keep and read is None:
            kwargs["logits_to_keep"] = plan.last_index  # lm_head only at each row's last new token
        with torch.no_grad():
            full = getattr(self.model(**kwargs), lay.output)  # (B, 1, D), or (B, T, D) without logits_to_keep
        work[0] += plan.real_tokens
        work[1] += plan.padded_tokens
        work[2] += 1
        picked = None
        if read is not None:
            flat = full[[i for i, r in enumerate(read) for _ in r], [j for r in read for j in r]]  # (sum len(read[i]), D)
            picked = list(flat.split([len(r) for r in read]))
        last = full if full.shape[1] == 1 else torch.take_along_dim(full, plan.last_index[..., None], dim=1)
        return last[:, 0], picked  # (B, D)

    def _count(self, work: list[int]) -> None:
        self._computed += work[0]
        self._padding += work[1]
        self._forwards += work[2]

    def _give_back(self, slots: list[int]) -> None:
        self._alloc.free(slots)
        self._storage.resize(self._alloc.capacity)

    def _bids(self, branches: list[Branch], call: str) -> list[int]:
        """Live ids of ``branches``; refuses none at all and a branch listed twice."""
        bids = [self._bid(b, f"branches[{i}]") for i, b in enumerate(branches)]
        if not bids:
            raise TTScaleError(f"{call}(branches=[]) needs at least one branch")
        if len(set(bids)) != len(bids):
            raise TTScaleError(f"{call}(branches=...) lists the same branch twice; fork it first if two continuations are wanted")
        return bids

    def _bid(self, branch, what: str) -> int:
        if not isinstance(branch, Branch) or branch._manager is not self:
            raise TTScaleError(f"{what} must be a Branch returned by this manager's prefill, fork or decode, got {type(branch).__name__}")
        if not branch.alive:
            raise TTScaleError(f"{what} (branch {branch.id}) was already released; use a live branch")
        return branch.id

    def _token_list(self, ids, what: str) -> list[int]:
        """Validate one sequence of ids (list, tuple, 1-D or (1, T) tensor) and return it as a list of ints."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() == 2 and ids.shape[0] == 1:
                ids = ids[0]
            if ids.dim() != 1:
                raise TTScaleError(f"{what} must be a 1-D sequence of token ids, got a tensor of shape {tuple(ids.shape)}")
            ids = ids.tolist()
        out, v = [], self.layout.vocab_size
        for t in ids:
            t = _as_id(t)
            if t is None or not 0 <= t < v:
                raise TTScaleError(f"{what} holds {t!r}, which is not a token id in [0, {v}); pass ids from the model's tokenizer")
            out.append(t)
        if not out:
            raise TTScaleError(f"{what} is empty; give at least one token id")
        return out

    def _token_lists(self, tokens, n: int) -> list[list[int]]:
        """One list of ids per branch; a bare id (int, numpy int, 0-d tensor) means a one-token list."""
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.tolist()
        tokens = list(tokens)
        if len(tokens) != n:
            raise TTScaleError(f"decode got {n} branches but {len(tokens)} token lists; give one list (or one id) per branch")
        return [self._token_list([t] if _as_id(t) is not None else t, f"tokens[{i}]") for i, t in enumerate(tokens)]

    def _self_check(self) -> None:
        """Prove on 6 tokens that this model honours the tree's masks and positions, then leave no trace."""
        v = self.layout.vocab_size
        seq = [(7 * i + 3) % v for i in range(6)]
        try:
            root = self.prefill(seq[:3])
            a, b = self.fork(root, 2)
            self.release(root)
            got = [self.decode([a, b], [seq[3:6], seq[4:6]])]  # different depths, one padded row
            got.append(self.decode([a, b], [[seq[0]], [seq[1]]]))  # reads keys stored by the previous call
            want_a = [seq, seq + [seq[0]]]
            want_b = [seq[:3] + seq[4:6], seq[:3] + seq[4:6] + [seq[1]]]
            self.release([a, b])
        except TTScaleError:
            raise
        except Exception as err:
            raise TTScaleError(f"model {type(self.model).__name__} failed a forward through the tree cache ({type(err).__name__}: {err}); this architecture is not supported") from err
        tol = 1e-3 if self.layout.dtype == torch.float32 else 5e-2
        with torch.no_grad():
            for step in range(2):
                for row, want in enumerate((want_a[step], want_b[step])):
                    ref = getattr(self.model(input_ids=torch.tensor([want], device=self.layout.device)), self.layout.output)[0, -1]
                    err = (got[step][row] - ref).abs().max().item()
                    if not err <= tol * max(1.0, ref.abs().max().item()):
                        raise TTScaleError(
                            f"model {type(self.model).__name__} gives different logits through the tree cache (max error {err:.3g}); "
                            "its forward ignores custom 4-D masks or position ids, so this architecture is not supported"
                        )
        self._tree.tokens_stored = self._computed = self._padding = self._forwards = 0
        self._storage.peak_bytes = 0


def _as_id(t) -> int | None:
    """``t`` as a Python int if it is one integer (int, numpy integer, 0-d integer tensor), else None; bools are not ids."""
    if isinstance(t, bool):
        return None
    if isinstance(t, torch.Tensor):
        return int(t) if t.dim() == 0 and not t.is_floating_point() else None
    try:
        return operator.index(t)
    except TypeError:
        return None


def _row_groups(counts: list[int]) -> list[list[int]]:
    """Split rows into forwards so right padding never more than doubles the work.

    One forward when ``B * max(counts) <= 2 * sum(counts)``; otherwise rows go into buckets by the bit length of
    ``count - 1`` (1 | 2 | 3-4 | 5-8 | ...), within which padding is under half.
    """
    if len(counts) * max(counts) <= 2 * sum(counts):
        return [list(range(len(counts)))]
    buckets: dict[int, list[int]] = {}
    for i, c in enumerate(counts):
        buckets.setdefault((c - 1).bit_length(), []).append(i)
    return [buckets[k] for k in sorted(buckets)]
