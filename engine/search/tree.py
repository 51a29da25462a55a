"""The search tree as it was explored: every step of every candidate, kept or not. Pure Python, no tensors.

    problem 0: root [prompt tokens]
                ├── n1 "## Step 1: ..."  scores [.71]        kept
                │    ├── n4 "## Step 2: ..." [.71 .80]      finished (stop)
                │    └── n5 "## Step 2: ..." [.71 .42]      pruned
                │         └── n9 (lookahead) [.71 .42 .30]   lookahead
                └── n2 "## Step 1: ..."  scores [.35]        pruned

Each node holds only its own new tokens (a root holds the prompt), so the distinct tokens of a problem's tree are
the sum over its nodes: ``tokens(problem)``. Statuses: ``root``; ``open`` (just generated, not yet selected);
``kept`` (survived a selection and was expanded); ``pruned`` (lost a selection); ``duplicate`` (same text as an
earlier candidate of its group); ``finished`` (a completion: it ended with an end token or at the last step);
``lookahead`` (scored, then thrown away). Search-and-learn never stores this tree (REFERENCE §3, issue #51).

Each problem's entry holds its ``question`` and ``root``; once its search is over the searcher adds the outcome:
``strategy``, ``n``, ``beam_width``, ``answer`` (the chosen answer), ``votes`` (the answer each rule — best,
majority, weighted — would pick), ``answers`` (one entry per group of equivalent answers, as voting groups them,
best first: ``{"answer", "count", "weight", "best", "picked_by", "nodes"}``, then the completions without an answer under answer
None; see :func:`engine.search.select.outcome`), ``completions`` (finished node ids, best score first) and ``chosen``
(the completion carrying ``answer``: the path ``ttscale view`` highlights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.errors import TTScaleError
from engine.jsonl import write_json_atomic

STATUSES = ("root", "open", "kept", "pruned", "duplicate", "finished", "lookahead")


@dataclass
class Node:
    """One step: its new tokens and text, its parent, the PRM scores of its whole path, and what became of it.

    ``depth`` counts steps from the root (a root is 0). ``step_scores`` is one score per step of the path up to
    and including this one (None when not scored); ``score`` is the aggregated number selection used (with
    lookahead, the lookahead path's). ``end`` is why the step ended: ``delimiter``, ``cap`` (the per-step token
    cap; the branch may go on), ``stop`` (an end token) or ``length`` (the cap of the last step).
    """

    id: int
    parent: int | None
    problem: int
    depth: int
    tokens: list[int]
    text: str
    kind: str = "step"
    group: int | None = None
    status: str = "open"
    end: str | None = None
    step_scores: list[float] | None = None
    score: float | None = None
    children: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True when the branch ends here (an end token, or the last step's cap)."""
        return self.end in ("stop", "length")


class SearchTree:
    """Nodes of one or more problems' searches, ids in creation order; written with :meth:`to_json`."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.problems: list[dict] = []

    def add_root(self, question: str, prompt_tokens: list[int], prompt_text: str) -> Node:
        """A new problem and its root node holding the prompt; refuses an empty prompt."""
        if not prompt_tokens:
            raise TTScaleError("a search root needs at least one prompt token; the rendered prompt was empty")
        problem = len(self.problems)
        node = self._new(None, problem, 0, list(prompt_tokens), prompt_text, kind="root", status="root")
        self.problems.append({"question": question, "root": node.id})
        return node

    def add(self, parent: int, tokens: list[int], text: str, end: str, kind: str = "step", group: int | None = None) -> Node:
        """A child step of ``parent``; refuses an unknown parent and a step without tokens."""
        if not 0 <= parent < len(self.nodes):
            raise TTScaleError(f"search tree: parent node {parent} does not exist")
        if not tokens:
            raise TTScaleError(f"search tree: a step under node {parent} has no tokens; every step holds at least one")
        up = self.nodes[parent]
        node = self._new(parent, up.problem, up.depth + 1, list(tokens), text, kind=kind, group=group, end=end,
                         status="lookahead" if kind == "lookahead" else "open")
        up.children.append(node.id)
        return node

    def _new(self, parent, problem, depth, tokens, text, **kw) -> Node:
        node = Node(id=len(self.nodes), parent=parent, problem=problem, depth=depth, tokens=tokens, text=text, **kw)
        self.nodes.append(node)
        return node

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def mark(self, node_id: int, status: str) -> None:
        """Set a node's status; refuses an unknown status."""
        if status not in STATUSES:
            raise TTScaleError(f"search tree: status {status!r} is unknown; use one of {', '.join(STATUSES)}")
        self.nodes[node_id].status = status

    def set_outcome(self, problem: int, completions: list[int], result: dict, **search) -> None:
        """Record a finished search in ``problem``'s entry: ``search`` (strategy, n, beam_width) and the result of
        :func:`engine.search.select.outcome` over ``completions`` (node ids, in the order outcome saw them), its
        completion indices turned into node ids. Refuses an unknown problem."""
        if not 0 <= problem < len(self.problems):
            raise TTScaleError(f"search tree: problem {problem} does not exist")
        chosen = result["chosen"]
        self.problems[problem].update(
            **search, answer=result["answer"], votes=result["votes"], completions=list(completions),
            chosen=None if chosen is None else completions[chosen],
            answers=[{**{k: v for k, v in e.items() if k != "members"}, "nodes": [completions[i] for i in e["members"]]}
                     for e in result["answers"]])

    def path(self, node_id: int) -> list[Node]:
        """The steps from the first one down to ``node_id`` (the root excluded)."""
        out = []
        node = self.nodes[node_id]
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def step_texts(self, node_id: int) -> list[str]:
        """The text of each step of the path to ``node_id``, in order."""
        return [n.text for n in self.path(node_id)]

    def path_tokens(self, node_id: int) -> list[int]:
        """Generated tokens of the path to ``node_id`` (prompt excluded)."""
        return [t for n in self.path(node_id) for t in n.tokens]

    def tokens(self, problem: int | None = None) -> int:
        """Distinct tokens in the tree (one problem's, or all): prompt once plus every node's own tokens."""
        return sum(len(n.tokens) for n in self.nodes if problem is None or n.problem == problem)

    def count(self, status: str, problem: int | None = None) -> int:
        """How many nodes (of one problem, or all) have ``status``."""
        return sum(n.status == status for n in self.nodes if problem is None or n.problem == problem)

    def check(self, done: bool = True) -> None:
        """Assert parent/child links, depths and statuses agree, and (``done``) that no node was left ``open``."""
        for n in self.nodes:
            assert n.status in STATUSES, f"node {n.id} has status {n.status!r}"
            assert (n.parent is None) == (n.kind == "root") == (n.depth == 0), f"node {n.id}: root fields disagree"
            if n.parent is not None:
                up = self.nodes[n.parent]
                assert n.id in up.children and n.depth == up.depth + 1 and n.problem == up.problem, f"node {n.id}: bad link"
            assert not (done and n.status == "open"), f"node {n.id} was never selected, pruned or finished"
            for c in n.children:
                assert self.nodes[c].parent == n.id, f"node {c} lists another parent"

    def to_json(self, problem: int | None = None) -> dict:
        """``{"problems": [...], "nodes": [...]}``, every node with tokens, text, parent, scores and status."""
        keep = [n for n in self.nodes if problem is None or n.problem == problem]
        probs = self.problems if problem is None else [self.problems[problem]]
        return {"problems": probs, "nodes": [asdict(n) for n in keep]}

    def write(self, path: str) -> int:
        """Write :meth:`to_json` to ``path`` atomically (a temporary file, then a rename: a crash mid-write leaves the
        previous complete tree); returns the number of nodes. Refuses an unwritable path."""
        try:
            write_json_atomic(path, self.to_json())
        except OSError as exc:
            raise TTScaleError(f"--tree {path}: cannot write it ({exc.__class__.__name__}: {exc}); give a writable file path") from exc
        return len(self.nodes)
