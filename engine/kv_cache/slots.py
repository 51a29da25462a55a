"""Slot allocator: which rows of the KV pool are in use. Pure Python, never touches a tensor.

A *slot* is one token's keys and values in every layer (one row of each per-layer pool tensor in
:mod:`engine.kv_cache.storage`). The allocator hands out slot ids, takes them back, and decides the pool's
capacity; the storage module only follows ``capacity``.

    capacity = 8        used: {0, 1, 2, 5}     free (min-heap): [3, 4, 6, 7]
    slot id   0 1 2 3 4 5 6 7
              # # # . . # . .

Policy, and why:
- lowest free id first (a min-heap), so live slots stay packed at the bottom and the top can be given back;
- grow by doubling (amortised O(1) copies per token), never past ``max_tokens``;
- shrink by halving while the top half is entirely free and at most a quarter of the pool is used, and drop the
  pool completely when nothing is used, so ``release`` really returns memory.
"""

from __future__ import annotations

import heapq

from engine.errors import TTScaleError


class KVCacheFull(TTScaleError):
    """The cache's ``max_tokens`` would be exceeded (callers that set the cap on a user's behalf re-word it)."""

MIN_CAPACITY = 64  # smallest pool worth allocating; below this, growth and shrink churn for nothing


class SlotAllocator:
    """Hands out slot ids from a pool whose size it manages; refuses to grow past ``max_tokens``.

    >>> a = SlotAllocator(max_tokens=None)
    >>> a.alloc(3)
    [0, 1, 2]
    >>> a.free([1]); a.alloc(1)
    [1]
    """

    def __init__(self, max_tokens: int | None = None, min_capacity: int = MIN_CAPACITY):
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise TTScaleError(f"max_tokens must be a positive int or None, got {max_tokens!r}; pass None for no limit")
        self.max_tokens = max_tokens
        self.min_capacity = min_capacity if max_tokens is None else min(min_capacity, max_tokens)
        self.capacity = 0
        self._free_heap: list[int] = []
        self._free_set: set[int] = set()

    @property
    def used(self) -> int:
        """Number of slots handed out and not yet freed."""
        return self.capacity - len(self._free_set)

    def alloc(self, n: int) -> list[int]:
        """Return ``n`` free slot ids (lowest first), growing the pool if needed.

        Refuses (:class:`KVCacheFull`, a ``TTScaleError``) when ``used + n`` would exceed ``max_tokens``.
        """
        if n < 0:
            raise TTScaleError(f"alloc(n) needs n >= 0, got {n}")
        if self.max_tokens is not None and self.used + n > self.max_tokens:
            raise KVCacheFull(
                f"max_tokens={self.max_tokens} would be exceeded: {self.used} tokens are stored and {n} more were asked for; "
                "release branches you no longer need or create the KVCacheManager with a larger max_tokens"
            )
        if len(self._free_set) < n:
            self._grow(self.used + n)
        out = [heapq.heappop(self._free_heap) for _ in range(n)]
        self._free_set.difference_update(out)
        return out

    def free(self, slots: list[int]) -> None:
        """Give slots back; refuses a slot that is not currently in use (a double free)."""
        for s in slots:
            if not 0 <= s < self.capacity or s in self._free_set:
                raise TTScaleError(f"free(slots) got slot {s}, which is not in use (capacity {self.capacity}); this is a bookkeeping bug")
            self._free_set.add(s)
            heapq.heappush(self._free_heap, s)
        self._maybe_shrink()

    # ------------------------------------------------------------------ helpers

    def _grow(self, needed: int) -> None:
        new_cap = max(self.min_capacity, self.capacity)
        while new_cap < needed:
            new_cap *= 2
        if self.max_tokens is not None:
            new_cap = min(new_cap, self.max_tokens)
        for s in range(self.capacity, new_cap):
            self._free_set.add(s)
            heapq.heappush(self._free_heap, s)
        self.capacity = new_cap

    def _maybe_shrink(self) -> None:
        if self.used == 0:
            self.capacity = 0
            self._free_heap, self._free_set = [], set()
            return
        new_cap = self.capacity
        while new_cap > self.min_capacity and self.used * 4 <= new_cap and all(
            s in self._free_set for s in range(new_cap // 2, new_cap)
        ):
            new_cap //= 2
        if new_cap != self.capacity:
            self._free_set = {s for s in self._free_set if s < new_cap}
            self._free_heap = sorted(self._free_set)  # a sorted list is a valid min-heap
            self.capacity = new_cap

    def check_invariants(self, used_slots: set[int] | None = None) -> None:
        """Assert the free list is consistent; with ``used_slots``, also that it is exactly the complement."""
        assert len(self._free_heap) == len(self._free_set), "free heap and free set disagree in size"
        assert set(self._free_heap) == self._free_set, "free heap and free set disagree"
        assert all(0 <= s < self.capacity for s in self._free_set), "a free slot lies outside the pool"
        if self.max_tokens is not None:
            assert self.capacity <= self.max_tokens, "pool grew past max_tokens"
        if used_slots is not None:
            assert not (used_slots & self._free_set), "a slot is both used and free"
            assert len(used_slots) + len(self._free_set) == self.capacity, (
                f"slots leaked: {self.capacity - len(self._free_set) - len(used_slots)} in use by nobody"
            )
