"""The search loop: every strategy is the same four named operations, repeated until no branch is left.

    plans = one plan per group: the problem's root, forked into the group's width      (prompt prefilled once)
    while plans:
        rows  = expand(plans)     fork each survivor into its children; decode one step each (beam, dvts) or
                                  every step to the end (best-of-n, weighted, majority), all problems in one loop
        cands = record(rows)      add the new steps to the search tree
        score(cands)              PRM scores of each candidate's path (with k greedy lookahead steps if asked)
        plans = prune(select(cands))   finished -> completions; the best unfinished per group survive and share
                                       the group's width; everything else is released (KV and PRM cache)

Strategies differ only in :meth:`SearchConfig.groups` (see engine/search/config.py) and whether a step or the
whole sample is expanded at once. Memory: a search holds branch handles; a branch pins its KV prefix; releasing a
pruned branch returns what only it held (STYLE §6). At the end of each batch nothing is held.
"""

from __future__ import annotations

import random
import time
from collections.abc import Hashable, Iterator
from dataclasses import asdict, dataclass, field, replace

import torch
from tqdm.auto import tqdm

from engine.answers import extract_answer
from engine.errors import ConfigError, TTScaleError
from engine.formats import build_prompt, end_of_turn_ids, get_format, prompt_style
from engine.kv_cache import Branch, KVCacheManager
from engine.kv_cache.slots import KVCacheFull
from engine.logits.budget import BudgetConfig, BudgetTokens
from engine.logits.sampling import SamplingConfig
from engine.search.config import DEFAULT_SYSTEM_PROMPT, SearchConfig
from engine.search.expand import BranchBudget, Expander, Row
from engine.search.prm import PRM, ModelPRM, aggregate, check_scores
from engine.search.select import Candidate, outcome, select, share
from engine.search.tree import SearchTree

DEFAULT_SAMPLING = SamplingConfig(temperature=0.8, top_p=1.0)  # search-and-learn's settings (REFERENCE §3)


def default_prm(model, tokenizer, protocol: str = "rlhflow") -> ModelPRM:
    """The policy model itself as a PRM under ``protocol`` (rlhflow by default), sharing its weights.

    A stand-in: offline there are no PRM weights (REFERENCE §7), so its scores only exercise the machinery.
    Refuses a tokenizer without the protocol's tokens (see :func:`engine.search.prm_protocols.make_protocol`).
    """
    return ModelPRM(model, tokenizer, protocol)


@dataclass
class Completion:
    """A finished candidate: its text, extracted answer, steps, PRM scores and why it ended.

    ``budget`` holds the budget-forcing counts (thinking/answer tokens, continuations, forced stop) when forcing ran.
    """

    text: str
    answer: str | None
    steps: list[str]
    step_scores: list[float] | None
    score: float | None
    finish_reason: str
    tokens: int
    node: int
    budget: dict | None = None


@dataclass
class SearchResult:
    """One problem's search. Token counts are this problem's own; ``peak_kv_bytes`` and ``wall_s`` are those of the
    batch of problems it was searched with (one decode loop serves the whole batch)."""

    question: str
    strategy: str
    answer: str | None
    completions: list[Completion]
    votes: dict
    policy_forward_tokens: int
    tree_tokens: int
    prm_forward_tokens: int
    peak_kv_bytes: int
    wall_s: float
    problem: int
    tree: SearchTree = field(repr=False)

    def to_json(self) -> dict:
        """Everything but the tree (``--tree FILE`` writes that)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("tree", "completions")}
        out["completions"] = [asdict(c) for c in self.completions]
        return out


@dataclass
class _Problem:
    index: int
    question: str
    root: int
    forward: int = 0
    prm_tokens: int = 0
    completions: list[int] = field(default_factory=list)
    budgets: dict = field(default_factory=dict)          # finished node -> BranchBudget


@dataclass
class _Live:
    """A branch the search holds and the tree node its last step is."""

    problem: _Problem
    node: int
    branch: Branch
    budget: BranchBudget | None = None
    depth: int = 0


@dataclass
class _Cand:
    live: _Live
    group: Hashable
    finished: bool
    lookahead: int | None = None                          # last lookahead node, when lookahead ran


class Searcher:
    """Runs a :class:`SearchConfig` strategy with a policy model and a PRM over the prefix-sharing KV cache.

        searcher = Searcher(model, tokenizer, SearchConfig("beam", n=8, beam_width=4), prm=load_prm(...))
        [result] = searcher.search("What is 12 * 13?")
        result.answer, result.completions[0].step_scores, result.tree.to_json()

    ``prm`` defaults to :func:`default_prm` (the policy under rlhflow) for strategies that score; ``sampling``
    defaults to T = 0.8 (``seed`` in it makes runs repeatable). ``budget`` composes budget forcing with any
    strategy: when it sets a thinking budget or an answer cap, prompts open thinking in ``format`` and every
    branch carries its own forcing state. ``system`` is the system prompt (search-and-learn's gist by default).
    ``max_kv_tokens`` caps the KV cache (tokens): batches shrink so their worst case fits (:meth:`batch_size`), and a
    single problem that still needs more is refused by the cache. Refuses a ``prm`` that is not a :class:`PRM`,
    empty questions, and (through the configs) invalid settings.
    """

    def __init__(self, model, tokenizer, config: SearchConfig | None = None, prm: PRM | None = None,
                 sampling: SamplingConfig | None = None, budget: BudgetConfig | None = None, format="s1",
                 system: str | None = DEFAULT_SYSTEM_PROMPT, template: str = "auto", max_kv_tokens: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.config = config or SearchConfig()
        self.sampling = sampling or DEFAULT_SAMPLING
        if prm is not None and not isinstance(prm, PRM):
            raise TTScaleError(f"prm must be an engine.search.prm.PRM (load_prm, VerifierPRM), got {type(prm).__name__}")
        self.prm = prm if prm is not None or not self.config.uses_prm else default_prm(model, tokenizer)
        self.format = get_format(format) if isinstance(format, str) else format
        self.style = prompt_style(tokenizer, template)
        self.system, self.max_kv_tokens = system, max_kv_tokens
        active = budget is not None and (budget.forces_thinking or budget.max_answer_tokens is not None)
        self.budget = budget if active else None
        eos = model.generation_config.eos_token_id
        self.budget_tokens = BudgetTokens.build(tokenizer, self.format, budget, eos) if self.budget else None
        self.end_ids = self.budget_tokens.end_ids if self.budget else end_of_turn_ids(tokenizer, eos)
        self._checked = False  # the KV manager's self-check runs once per Searcher

    # ------------------------------------------------------------------ public API

    def render(self, question: str) -> str:
        """The exact prompt text for ``question``: chat template with the system prompt; it opens thinking only
        when budget forcing is on. Refuses an empty question."""
        fmt = self.format if self.budget else replace(self.format, think_start="")
        return build_prompt(self.tokenizer, question, fmt, self.style, self.system)

    def search(self, questions: str | list[str], progress: bool = False) -> list[SearchResult]:
        """Search every question (``batch_problems`` at a time, in one decode loop per batch); one result each.

        All results share one :class:`SearchTree` (``result.tree``; nodes carry their problem index).
        The results of :meth:`iter_search`, collected; refuses an empty list and empty questions (before any work).
        """
        return [r for batch in self.iter_search(questions, progress) for r in batch]

    def iter_search(self, questions: str | list[str], progress: bool = False) -> Iterator[list[SearchResult]]:
        """Search every question like :meth:`search`, yielding each batch's results (in question order) as soon as its
        decode loop finishes; the next batch starts only when the caller asks for it. Every result of every batch
        shares the same :class:`SearchTree`, which grows batch by batch (write it after each to keep what is done).

        Refuses an empty list and empty questions when called, before any work.
        """
        questions = [questions] if isinstance(questions, str) else list(questions)
        if not questions:
            raise TTScaleError("no question given; pass at least one prompt")
        prompts = [self.render(q) for q in questions]
        ids = [self.tokenizer(p, add_special_tokens=self.style.add_special_tokens)["input_ids"] for p in prompts]
        device = next(self.model.parameters()).device
        seed = self.sampling.seed if self.sampling.seed is not None else random.randrange(2**62)
        self._gen = torch.Generator(device=device).manual_seed(seed)
        self._seeds = random.Random(seed)  # per-branch budget-forcing seeds
        return self._batches(questions, prompts, ids, progress)

    def _batches(self, questions, prompts, ids, progress: bool) -> Iterator[list[SearchResult]]:
        """The checked work of :meth:`iter_search`, one batch per ``next``."""
        tree, bar = SearchTree(), None
        if progress:
            bar = tqdm(desc=f"search {self.config.strategy}", unit="tok", leave=False)
        b = self.batch_size(max(len(x) for x in ids))
        try:
            for at in range(0, len(questions), b):
                try:
                    batch = self._search_batch(questions[at: at + b], prompts[at: at + b], ids[at: at + b], tree, bar)
                except KVCacheFull as exc:
                    worst = max(len(x) for x in ids[at: at + b]) + self._worst_growth()
                    raise ConfigError(f"`max_kv_tokens` {self.max_kv_tokens} is too small for problem {at + 1}: its search needed more "
                                      f"KV-cache tokens ({exc}); raise it (this search's worst case is {worst:,} tokens per problem) "
                                      "or unset it") from exc
                yield batch
        finally:
            if bar is not None:
                bar.close()

    def _worst_growth(self) -> int:
        """KV tokens one problem may add beyond its prompt: N branches of ``max_steps`` full steps, plus lookahead."""
        cfg = self.config
        return cfg.n * (cfg.max_steps + cfg.lookahead) * cfg.max_step_tokens

    def batch_size(self, prompt_tokens: int) -> int:
        """Problems per decode loop: ``batch_problems``, lowered so that a batch's worst case (no prefix shared past
        the prompt: N branches of ``max_steps`` full steps, plus lookahead) fits ``max_kv_tokens`` when it is set."""
        cfg = self.config
        if self.max_kv_tokens is None:
            return cfg.batch_problems
        worst = prompt_tokens + self._worst_growth()
        return max(1, min(cfg.batch_problems, self.max_kv_tokens // worst))

    # ------------------------------------------------------------------ the loop

    def _search_batch(self, questions, prompts, ids, tree: SearchTree, bar) -> list[SearchResult]:
        t0 = time.perf_counter()
        cfg = self.config
        mgr = KVCacheManager(self.model, max_tokens=self.max_kv_tokens, self_check=not self._checked)
        self._checked = True
        exp = Expander(mgr, self.tokenizer, self.end_ids, cfg.delimiter, cfg.max_steps, cfg.max_step_tokens,
                       self.sampling, self._gen)
        on_token = None if bar is None else bar.update
        problems, plans = [], []
        try:
            for q, text, prompt_ids in zip(questions, prompts, ids):
                root = tree.add_root(q, prompt_ids, text)
                p = _Problem(index=root.problem, question=q, root=root.id, forward=len(prompt_ids))
                problems.append(p)
                budget = BranchBudget(self.budget_tokens, self.budget, self.sampling.greedy, None) if self.budget else None
                live = _Live(p, root.id, mgr.prefill(prompt_ids), budget)
                plans += [(live, (p.index, g), width) for g, (width, _) in enumerate(cfg.groups())]
            while plans:
                rows = self._expand(exp, plans, on_token)
                cands = self._record(exp, tree, rows)
                if cfg.lookahead:
                    self._lookahead(exp, tree, cands, on_token)
                self._score(tree, cands)
                plans = self._prune(mgr, tree, cands)
        except BaseException:
            for p in problems:
                if self.prm is not None:
                    self.prm.release(p.question)
            raise
        stats = mgr.stats()
        assert stats.branches == 0, f"search left {stats.branches} branches alive"
        assert sum(p.forward for p in problems) == stats.forward_tokens, "per-problem token counts disagree with the cache"
        wall = time.perf_counter() - t0
        return [self._result(exp, tree, p, stats.peak_bytes, wall) for p in problems]

    def _expand(self, exp: Expander, plans, on_token) -> list[Row]:
        """Fork each planned parent into its children and decode them: one step (beam, dvts) or to the end."""
        rows, parents = [], {}
        wanted = 1 if self.config.stepwise else None
        for live, group, count in plans:
            parents[id(live)] = live
            for kid in exp.manager.fork(live.branch, count):
                budget = live.budget.fork(seed=self._seeds.randrange(2**62)) if live.budget is not None else None
                rows.append(Row(kid, depth=live.depth, steps_wanted=wanted, greedy=self.sampling.greedy, budget=budget,
                                tag=(live, group)))
        for live in parents.values():
            exp.manager.release(live.branch)
        exp.expand(rows, on_token)
        return rows

    def _record(self, exp: Expander, tree: SearchTree, rows: list[Row]) -> list[_Cand]:
        """Add every new step to the tree; the last step of each row is a candidate."""
        cands = []
        for row in rows:
            parent, group = row.tag
            node = parent.node
            for k, step in enumerate(row.steps):
                node = tree.add(node, step.tokens, step.text, step.end, group=group[1]).id
                if k < len(row.steps) - 1:
                    tree.mark(node, "kept")
            parent.problem.forward += row.computed
            live = _Live(parent.problem, node, row.branch, row.budget, depth=tree[node].depth)
            cands.append(_Cand(live, group, finished=row.steps[-1].finished))
        return cands

    def _lookahead(self, exp: Expander, tree: SearchTree, cands: list[_Cand], on_token) -> None:
        """k greedy steps from each unfinished candidate, kept in the tree as ``lookahead`` nodes, then released."""
        rows = []
        for c in cands:
            depth = tree[c.live.node].depth
            k = min(self.config.lookahead, self.config.max_steps - depth)
            if c.finished or k < 1:
                continue
            [branch] = exp.manager.fork(c.live.branch, 1)
            budget = c.live.budget.fork(greedy=True) if c.live.budget is not None else None
            rows.append(Row(branch, depth=depth, steps_wanted=k, greedy=True, budget=budget, tag=c))
        exp.expand(rows, on_token)
        for row in rows:
            c, node = row.tag, row.tag.live.node
            for step in row.steps:
                node = tree.add(node, step.tokens, step.text, step.end, kind="lookahead").id
            c.lookahead = node
            c.live.problem.forward += row.computed
            exp.manager.release(row.branch)

    def _score(self, tree: SearchTree, cands: list[_Cand]) -> None:
        """PRM scores of each candidate's path (one call per problem), then of its lookahead path if any."""
        if not self.config.uses_prm:
            return
        by_problem: dict[int, list[_Cand]] = {}
        for c in cands:
            by_problem.setdefault(c.live.problem.index, []).append(c)
        for mine in by_problem.values():
            p = mine[0].live.problem
            self._score_nodes(tree, p, [c.live.node for c in mine])
            ahead = [c for c in mine if c.lookahead is not None]
            if ahead:
                self._score_nodes(tree, p, [c.lookahead for c in ahead])
                for c in ahead:
                    tree[c.live.node].score = tree[c.lookahead].score

    def _score_nodes(self, tree: SearchTree, p: _Problem, nodes: list[int]) -> None:
        before = self.prm.forward_tokens
        candidates = [tree.step_texts(n) for n in nodes]
        scores = check_scores(self.prm, p.question, candidates, self.prm.score(p.question, candidates))
        p.prm_tokens += self.prm.forward_tokens - before
        for n, s in zip(nodes, scores):
            for node in tree.path(n):
                if node.step_scores is None:
                    node.step_scores = list(s[: node.depth])
            tree[n].step_scores, tree[n].score = list(s), aggregate(s, self.config.agg)

    def _prune(self, mgr: KVCacheManager, tree: SearchTree, cands: list[_Cand]) -> list:
        """Select per problem; record completions; release the rest; plan the survivors' children."""
        plans = []
        keep = self.config.groups()[0][1]
        widths = {(p, g): w for p in {c.live.problem.index for c in cands} for g, (w, _) in enumerate(self.config.groups())}
        by_problem: dict[int, list[_Cand]] = {}
        for c in cands:
            by_problem.setdefault(c.live.problem.index, []).append(c)
        for mine in by_problem.values():
            p = mine[0].live.problem
            sel = select([Candidate(c.group, tree[c.live.node].score, c.finished, "".join(tree.step_texts(c.live.node)))
                          for c in mine], keep, self.config.filter_duplicates)
            survivors: dict[Hashable, list[_Live]] = {}
            for i, c in enumerate(mine):
                status = sel.status(i)
                tree.mark(c.live.node, status)
                if status == "kept":
                    survivors.setdefault(c.group, []).append(c.live)
                    continue
                mgr.release(c.live.branch)
                if status == "finished":
                    p.completions.append(c.live.node)
                    if c.live.budget is not None:
                        p.budgets[c.live.node] = c.live.budget
            for g, lives in survivors.items():
                plans += [(live, g, n) for live, n in zip(lives, share(len(lives), widths[g]))]
            self._release_prm(tree, p, mine, sel)
        return plans

    def _release_prm(self, tree: SearchTree, p: _Problem, mine: list[_Cand], sel) -> None:
        """Drop PRM cache entries nothing will extend: all but the survivors' paths (their parents' too)."""
        if self.prm is None:
            return
        parents = {tree[c.live.node].parent for c in mine}
        for i, c in enumerate(mine):
            if i not in sel.kept:
                self.prm.release(p.question, tree.step_texts(c.live.node))
            if c.lookahead is not None:
                self.prm.release(p.question, tree.step_texts(c.lookahead))
        for n in parents:
            if tree[n].kind != "root":
                self.prm.release(p.question, tree.step_texts(n))

    def _result(self, exp: Expander, tree: SearchTree, p: _Problem, peak: int, wall: float) -> SearchResult:
        if self.prm is not None:
            self.prm.release(p.question)
        comps = []
        for n in p.completions:
            node = tree[n]
            text = exp.text(tree.path_tokens(n))
            budget = None
            if n in p.budgets:
                st = p.budgets[n].state()
                budget = {"thinking_tokens": st.thinking_tokens, "answer_tokens": st.answer_tokens, "forced_tokens": st.forced_tokens,
                          "waits_injected": st.injections, "forced_stop": st.forced_stop}
            comps.append(Completion(text=text, answer=extract_answer(text), steps=tree.step_texts(n), step_scores=node.step_scores,
                                    score=node.score, finish_reason=node.end, tokens=len(tree.path_tokens(n)), node=n, budget=budget))
        comps.sort(key=lambda c: -(c.score if c.score is not None else float("-inf")))
        answers, scores = [c.answer for c in comps], [c.score for c in comps]
        o = outcome(answers, scores, self.config.answer_rule)
        tree.set_outcome(p.index, [c.node for c in comps], o, strategy=self.config.strategy, n=self.config.n,
                         beam_width=self.config.beam_width)
        return SearchResult(
            question=p.question, strategy=self.config.strategy, answer=o["answer"],
            completions=comps, votes=o["votes"], policy_forward_tokens=p.forward, tree_tokens=tree.tokens(p.index),
            prm_forward_tokens=p.prm_tokens, peak_kv_bytes=peak, wall_s=wall, problem=p.index, tree=tree)
