"""Prompt prefixes kept in the KV cache between requests, so a shared prefix (the system prompt, the chat
template's header, a repeated question) is computed once.

The cache holds up to ``entries`` branches of :class:`engine.kv_cache.KVCacheManager`, one per recent prompt. A new
prompt is matched against each (longest common prefix of token ids); the best entry is forked, the fork cut back to
the common part (``truncate``: nothing recomputed) and only the rest of the prompt runs through the model:

    cached:  [ system prompt + template | question A ]
    new:     [ system prompt + template | question B ]        -> fork, truncate to the common part, decode B
             └──── shared, computed once ──┘

A prompt equal to a cached one shares its logits too and runs nothing. Entries are evicted least recently used;
an entry pins only the prompt's own segments (rows forked from it grow their own), so the cache costs at most
``entries`` prompts of KV memory. Matching is plain Python over token lists.
"""

from __future__ import annotations

from collections import OrderedDict


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two id lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """Recent prompts as live branches; :meth:`start` returns a branch for a new prompt and what was left to compute.

    Refuses nothing itself: the manager refuses empty prompts and out-of-vocabulary ids.
    """

    def __init__(self, manager, entries: int = 8):
        self.manager, self.entries = manager, entries
        self._cached: OrderedDict[int, tuple[list[int], object]] = OrderedDict()  # key -> (ids, branch)
        self._next = 0
        self.reused_tokens = 0   # prompt tokens not recomputed thanks to the cache (cumulative)

    def match(self, ids: list[int]) -> tuple[object | None, int]:
        """The cached branch sharing the longest prefix with ``ids`` and that length (``None, 0`` when none shares)."""
        best, length = None, 0
        for key, (cached, _) in self._cached.items():
            k = common_prefix(cached, ids)
            if k > length:
                best, length = key, k
        return best, length

    def start(self, ids: list[int]) -> tuple[object, list[int]]:
        """A new branch for prompt ``ids`` and the ids still to run through the model (maybe none: then the branch's
        ``logits`` are current). The caller decodes the rest (several prompts may share one ``decode``) and then calls
        :meth:`remember`."""
        key, k = self.match(ids)
        if key is None or self.entries == 0:
            return None, ids
        cached, branch = self._cached[key]
        self._cached.move_to_end(key)
        [fork] = self.manager.fork(branch, 1)
        if k == len(ids) == len(cached):
            self.reused_tokens += k
            return fork, []
        keep = min(k, len(ids) - 1)   # at least one new token must run, so the fork gets fresh logits
        if keep < 1:
            self.manager.release(fork)
            return None, ids
        self.manager.truncate(fork, keep)
        self.reused_tokens += keep
        return fork, ids[keep:]

    def remember(self, ids: list[int], branch) -> None:
        """Keep a fork of ``branch`` (whose sequence is ``ids``) for later prompts; evicts the oldest beyond ``entries``.
        An equal prompt already cached is refreshed instead of stored twice."""
        if self.entries == 0:
            return
        for key, (cached, _) in self._cached.items():
            if cached == ids:
                self._cached.move_to_end(key)
                return
        [keep] = self.manager.fork(branch, 1)
        self._cached[self._next] = (list(ids), keep)
        self._next += 1
        while len(self._cached) > self.entries:
            _, (_, old) = self._cached.popitem(last=False)
            self.manager.release(old)

    def clear(self) -> None:
        """Release every cached branch."""
        for _, branch in self._cached.values():
            self.manager.release(branch)
        self._cached.clear()

    def __len__(self) -> int:
        return len(self._cached)
