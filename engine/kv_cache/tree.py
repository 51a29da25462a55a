"""The prefix tree of token segments: who shares what, and who pins what. Pure Python, never touches a tensor.

Each node holds a *segment*: consecutive tokens and the pool slots that hold their keys/values. A branch handle
pins one node; its sequence is the concatenation of segments from the root down to that node.

    prompt "A B C D" prefilled, forked into 3, each child decoded a different amount:

    root [A B C D]  slots [0 1 2 3]      handles {}        (kept alive by its 3 children)
     +-- n1 [e f]   slots [4 7]          handles {b1}
     +-- n2 [g]     slots [5]            handles {b2}
     +-- n3 [h i j] slots [6 8 9]        handles {b3}

Ownership flows one way (STYLE §6): a branch handle pins its node, a node pins its parent (a node's reference
count is ``len(children) + len(handles)``), nodes own their slots, and the allocator owns free slots. A node whose
count drops to zero is freed together with its slots, and the walk continues to its parent.

The tree is kept *compressed* (as in a radix tree): a node with no handle and a single child is merged with that
child, so a surviving beam does not accumulate one node per search step. Appending to a branch whose node is
pinned by that branch alone, with no children, extends the node in place; otherwise a new child is created, which
is how forked siblings stop sharing.

``check_invariants()`` proves the structure and the slot accounting after any sequence of operations.
"""

from __future__ import annotations

from engine.errors import TTScaleError
from engine.kv_cache.slots import SlotAllocator


class Node:
    """One segment: ``tokens[i]`` sits at depth ``start + i`` and its keys/values live in pool slot ``slots[i]``."""

    __slots__ = ("id", "parent", "start", "tokens", "slots", "children", "handles")

    def __init__(self, node_id: int, parent: Node | None, start: int, tokens: list[int], slots: list[int]):
        self.id = node_id
        self.parent = parent
        self.start = start
        self.tokens = tokens
        self.slots = slots
        self.children: dict[int, Node] = {}
        self.handles: set[int] = set()

    @property
    def end(self) -> int:
        """Depth just past this segment's last token."""
        return self.start + len(self.tokens)

    @property
    def refs(self) -> int:
        """Reference count: children plus branch handles pinning this node."""
        return len(self.children) + len(self.handles)

    def __repr__(self) -> str:
        return f"Node({self.id}, start={self.start}, n={len(self.tokens)}, children={list(self.children)}, handles={sorted(self.handles)})"


class SegmentTree:
    """A forest of token segments with branch handles and reference counts, on top of a :class:`SlotAllocator`.

    Every method takes and returns branch ids (ints); the manager wraps them in ``Branch`` objects. Methods that
    take a branch id refuse one that is not live with :class:`TTScaleError`.
    """

    def __init__(self, allocator: SlotAllocator):
        self.allocator = allocator
        self._nodes: dict[int, Node] = {}
        self._branch_node: dict[int, Node] = {}
        self._next_node = 0
        self._next_branch = 0
        self.tokens_stored = 0  # cumulative tokens ever inserted (never decreases)

    # ------------------------------------------------------------------ queries

    @property
    def num_tokens(self) -> int:
        """Distinct tokens stored now (each shared prefix counted once)."""
        return sum(len(n.tokens) for n in self._nodes.values())

    @property
    def num_nodes(self) -> int:
        """Live segments."""
        return len(self._nodes)

    @property
    def num_branches(self) -> int:
        """Live branch handles."""
        return len(self._branch_node)

    def is_live(self, bid: int) -> bool:
        """Whether ``bid`` is a branch that was created and not yet released."""
        return bid in self._branch_node

    def length(self, bid: int) -> int:
        """Number of tokens in the branch's sequence."""
        return self._node(bid).end

    def path(self, bid: int) -> list[Node]:
        """Nodes from the root down to the branch's node."""
        node, out = self._node(bid), []
        while node is not None:
            out.append(node)
            node = node.parent
        out.reverse()
        return out

    def tokens(self, bid: int) -> list[int]:
        """The branch's full token sequence (prompt included)."""
        return [t for n in self.path(bid) for t in n.tokens]

    def slots(self, bid: int, start: int = 0) -> list[int]:
        """Pool slots of the branch's tokens from depth ``start`` on, in sequence order."""
        out: list[int] = []
        for n in self.path(bid):
            if n.end > start:
                out.extend(n.slots[max(0, start - n.start):])
        return out

    # ------------------------------------------------------------------ operations

    def new_root(self, tokens: list[int], slots: list[int]) -> int:
        """Store a new sequence (a prefilled prompt) as a root segment and return a branch pinning it."""
        if not tokens or len(tokens) != len(slots):
            raise TTScaleError(f"new_root needs as many slots as tokens and at least one token, got {len(tokens)} tokens and {len(slots)} slots")
        node = self._new_node(None, 0, list(tokens), list(slots))
        self.tokens_stored += len(tokens)
        return self._new_handle(node)

    def fork(self, bid: int, n: int) -> list[int]:
        """Return ``n`` new branches pinning the same node as ``bid``; nothing is copied. ``bid`` stays live."""
        node = self._node(bid)
        return [self._new_handle(node) for _ in range(n)]

    def append(self, bid: int, tokens: list[int], slots: list[int]) -> None:
        """Append tokens (whose keys/values are already written in ``slots``) to a branch.

        In place when the branch alone pins a childless node; otherwise under a new child node.
        """
        if not tokens or len(tokens) != len(slots):
            raise TTScaleError(f"append needs as many slots as tokens and at least one token, got {len(tokens)} tokens and {len(slots)} slots")
        node = self._node(bid)
        self.tokens_stored += len(tokens)
        if not node.children and node.handles == {bid}:
            node.tokens.extend(tokens)
            node.slots.extend(slots)
            return
        child = self._new_node(node, node.end, list(tokens), list(slots))
        node.handles.discard(bid)
        child.handles.add(bid)
        self._branch_node[bid] = child

    def release(self, bid: int) -> None:
        """Drop a branch handle; free every segment (and its slots) that nothing pins any more."""
        node = self._node(bid)
        node.handles.discard(bid)
        del self._branch_node[bid]
        self._collect(node)

    def truncate(self, bid: int, length: int) -> None:
        """Cut a branch back to its first ``length`` tokens, freeing what only it held; shared segments are split, not copied.

        Refuses ``length`` outside ``1 .. branch length`` (use ``release`` to drop a branch entirely).
        """
        node = self._node(bid)
        if not isinstance(length, int) or not 1 <= length <= node.end:
            raise TTScaleError(
                f"truncate(length={length!r}) must keep between 1 and the branch's {node.end} tokens; use release() to drop the whole branch"
            )
        if length == node.end:
            return
        target = node
        while target.start >= length:  # the segment holding token index length-1
            target = target.parent
        if length < target.end:
            self._split(target, length - target.start)
        node = self._branch_node[bid]  # a split may have moved the handle
        node.handles.discard(bid)
        target.handles.add(bid)
        self._branch_node[bid] = target
        self._collect(node)

    # ------------------------------------------------------------------ invariants

    def check_invariants(self) -> None:
        """Assert structure, reference counts, depths, compression and slot accounting; raises AssertionError."""
        used: set[int] = set()
        for nid, n in self._nodes.items():
            assert n.id == nid, f"{n} filed under id {nid}"
            assert len(n.tokens) == len(n.slots) >= 1, f"{n} has {len(n.tokens)} tokens and {len(n.slots)} slots"
            assert n.refs >= 1, f"{n} is pinned by nothing but was not freed"
            assert n.handles or len(n.children) >= 2, f"{n} has no handle and one child: it should have been merged"
            if n.parent is None:
                assert n.start == 0, f"root {n} does not start at depth 0"
            else:
                assert self._nodes.get(n.parent.id) is n.parent, f"{n} has a dead parent"
                assert n.parent.children.get(nid) is n, f"{n} is missing from its parent's children"
                assert n.start == n.parent.end, f"{n} starts at {n.start} but its parent ends at {n.parent.end}"
            for cid, c in n.children.items():
                assert c.parent is n and self._nodes.get(cid) is c, f"child {cid} of {n} is dead or reparented"
            for bid in n.handles:
                assert self._branch_node.get(bid) is n, f"handle {bid} on {n} points elsewhere"
            dup = used.intersection(n.slots)
            assert not dup and len(set(n.slots)) == len(n.slots), f"slots {sorted(dup) or n.slots} are held twice"
            used.update(n.slots)
        for bid, n in self._branch_node.items():
            assert bid in n.handles and self._nodes.get(n.id) is n, f"branch {bid} pins a dead node {n}"
        self.allocator.check_invariants(used)

    # ------------------------------------------------------------------ helpers

    def _node(self, bid: int) -> Node:
        node = self._branch_node.get(bid)
        if node is None:
            raise TTScaleError(f"branch {bid} is not live (it was released, or belongs to another manager); use a branch returned by prefill, fork or decode")
        return node

    def _new_node(self, parent: Node | None, start: int, tokens: list[int], slots: list[int]) -> Node:
        node = Node(self._next_node, parent, start, tokens, slots)
        self._next_node += 1
        self._nodes[node.id] = node
        if parent is not None:
            parent.children[node.id] = node
        return node

    def _new_handle(self, node: Node) -> int:
        bid = self._next_branch
        self._next_branch += 1
        node.handles.add(bid)
        self._branch_node[bid] = node
        return bid

    def _split(self, node: Node, k: int) -> None:
        """Split ``node`` after its first ``k`` tokens: the tail, its children and its handles move to a new child."""
        tail = Node(self._next_node, node, node.start + k, node.tokens[k:], node.slots[k:])
        self._next_node += 1
        self._nodes[tail.id] = tail
        tail.children, tail.handles = node.children, node.handles
        for c in tail.children.values():
            c.parent = tail
        for bid in tail.handles:
            self._branch_node[bid] = tail
        del node.tokens[k:], node.slots[k:]
        node.children, node.handles = {tail.id: tail}, set()

    def _collect(self, node: Node | None) -> None:
        """Free ``node`` and its ancestors while nothing pins them, then re-compress where the walk stopped."""
        while node is not None and node.refs == 0:
            self.allocator.free(node.slots)
            del self._nodes[node.id]
            parent = node.parent
            if parent is not None:
                del parent.children[node.id]
            node = parent
        if node is not None and not node.handles and len(node.children) == 1:
            self._merge_only_child(node)

    def _merge_only_child(self, node: Node) -> None:
        """Absorb the single child of a handle-less node (radix compression); grandchildren and handles move up."""
        (child,) = node.children.values()
        node.tokens.extend(child.tokens)
        node.slots.extend(child.slots)
        node.children, node.handles = child.children, child.handles
        for c in node.children.values():
            c.parent = node
        for bid in node.handles:
            self._branch_node[bid] = node
        del self._nodes[child.id]
