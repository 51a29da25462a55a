"""The tree and the slot allocator without a model: structure, sharing, reference counts, memory coming back.

A fake pool (slot -> (token, depth) written at insert time) checks that a live branch's slots still hold what
was stored for it, so a slot freed and handed out again while someone still reads it would be caught.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import TTScaleError
from engine.kv_cache.slots import SlotAllocator
from engine.kv_cache.tree import SegmentTree


class Harness:
    """A tree plus an oracle: the expected token list of every live branch, and a fake slot pool."""

    def __init__(self, max_tokens=None):
        self.alloc = SlotAllocator(max_tokens=max_tokens, min_capacity=4)
        self.tree = SegmentTree(self.alloc)
        self.expect: dict[int, list[int]] = {}
        self.pool: dict[int, tuple[int, int]] = {}

    def _store(self, tokens, start):
        slots = self.alloc.alloc(len(tokens))
        for i, (s, t) in enumerate(zip(slots, tokens)):
            self.pool[s] = (t, start + i)
        return slots

    def root(self, tokens):
        bid = self.tree.new_root(tokens, self._store(tokens, 0))
        self.expect[bid] = list(tokens)
        return bid

    def fork(self, bid, n):
        kids = self.tree.fork(bid, n)
        for k in kids:
            self.expect[k] = list(self.expect[bid])
        return kids

    def append(self, bid, tokens):
        self.tree.append(bid, tokens, self._store(tokens, len(self.expect[bid])))
        self.expect[bid] += tokens

    def truncate(self, bid, length):
        self.tree.truncate(bid, length)
        del self.expect[bid][length:]

    def release(self, bid):
        self.tree.release(bid)
        del self.expect[bid]

    def check(self):
        self.tree.check_invariants()
        for bid, want in self.expect.items():
            assert self.tree.tokens(bid) == want
            assert self.tree.length(bid) == len(want)
            assert [self.pool[s] for s in self.tree.slots(bid)] == [(t, d) for d, t in enumerate(want)]
        assert self.tree.num_tokens == self.alloc.used <= sum(map(len, self.expect.values()))


def test_fork_shares_prefix_and_release_frees_only_unshared():
    h = Harness()
    root = h.root([1, 2, 3, 4])
    a, b, c = h.fork(root, 3)
    h.release(root)
    h.append(a, [5, 6])
    h.append(b, [7])
    h.append(c, [8, 9, 10])
    h.check()
    assert h.tree.num_tokens == 4 + 2 + 1 + 3  # the prompt once
    assert h.tree.num_nodes == 4
    h.release(b)
    h.check()
    assert h.tree.num_tokens == 9
    h.release(a)
    h.check()
    # root has one child left and no handle: compressed into one segment
    assert h.tree.num_nodes == 1 and h.tree.tokens(c) == [1, 2, 3, 4, 8, 9, 10]
    h.release(c)
    h.check()
    assert h.alloc.capacity == 0 and h.tree.num_nodes == 0


def test_append_in_place_only_when_unshared():
    h = Harness()
    r = h.root([1, 2])
    h.append(r, [3])  # alone: extends its own segment
    assert h.tree.num_nodes == 1
    (k,) = h.fork(r, 1)
    h.append(k, [4])  # shared node: a child is created
    assert h.tree.num_nodes == 2
    h.append(k, [5, 6])  # k's node is its own now
    assert h.tree.num_nodes == 2
    h.check()


def test_truncate_into_shared_prefix_splits_without_copy():
    h = Harness()
    r = h.root([1, 2, 3, 4, 5])
    (k,) = h.fork(r, 1)
    h.append(k, [6, 7])
    before = h.tree.num_tokens
    h.truncate(k, 3)  # cuts inside the shared root segment
    h.check()
    assert h.tree.num_tokens == before - 2  # only k's private tokens were freed
    h.append(k, [9])
    h.check()
    assert h.tree.tokens(k) == [1, 2, 3, 9] and h.tree.tokens(r) == [1, 2, 3, 4, 5]


def test_refusals():
    h = Harness(max_tokens=6)
    r = h.root([1, 2, 3])
    with pytest.raises(TTScaleError, match="max_tokens=6"):
        h.alloc.alloc(4)
    with pytest.raises(TTScaleError, match="between 1 and"):
        h.tree.truncate(r, 0)
    h.release(r)
    with pytest.raises(TTScaleError, match="not live"):
        h.tree.fork(r, 1)
    with pytest.raises(TTScaleError, match="not in use"):
        h.alloc.free([0])


def test_allocator_shrinks_and_reuses_low_slots():
    a = SlotAllocator(min_capacity=4)
    s = a.alloc(64)
    assert a.capacity == 64
    a.free(s[8:])
    assert a.capacity <= 32 and a.used == 8
    a.check_invariants(set(s[:8]))
    assert a.alloc(2) == [8, 9]


OPS = st.lists(
    st.tuples(st.sampled_from(["fork", "append", "release", "truncate", "root"]), st.integers(0, 10**6),
              st.integers(1, 4), st.lists(st.integers(0, 99), min_size=1, max_size=5)),
    min_size=1, max_size=80,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_keep_invariants_and_release_returns_everything(ops):
    h = Harness()
    h.root([7, 8, 9])
    for op, pick, n, toks in ops:
        live = sorted(h.expect)
        if op == "root" or not live:
            h.root(toks)
        else:
            bid = live[pick % len(live)]
            if op == "fork":
                h.fork(bid, n)
            elif op == "append":
                h.append(bid, toks)
            elif op == "release":
                h.release(bid)
            else:
                h.truncate(bid, 1 + pick % len(h.expect[bid]))
        h.check()
    for bid in list(h.expect):
        h.release(bid)
        h.check()
    assert h.tree.num_nodes == 0 and h.alloc.capacity == 0 and h.alloc.used == 0
