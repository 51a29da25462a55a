"""Search strategies against slow sources of truth, token for token, on tiny random Llamas (SmolLM2's tokenizer).

``lively`` is a tiny model whose greedy output changes every step; sampled at T = 1 it is close to uniform over
the vocabulary. ``stoppy`` is the same kind of model with one token in eight declared an end token, so branches
really finish at different depths. The step delimiter is ``"e"`` here (the tiny models never write a blank line),
which cuts steps after a few tokens. Scores come from a deterministic verifier (a hash of the step text), so
selection is non-trivial and costs nothing; one test uses the default PRM (the policy under rlhflow).
"""

import zlib
from dataclasses import replace

import pytest
import torch
from conftest import make_tiny_model

from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.search import DEFAULT_SYSTEM_PROMPT, SearchConfig, Searcher, VerifierPRM, aggregate

Q = "What is 2 + 3?"
GREEDY, SAMPLED = SamplingConfig(), SamplingConfig(temperature=1.0, seed=7)


def hashed(question, steps):
    """A deterministic stand-in PRM: a score in [0, 1) from each step's text."""
    return [zlib.crc32(s.encode()) % 1000 / 1000 for s in steps]


@pytest.fixture(scope="module")
def lively():
    return make_tiny_model(init=0.2)


@pytest.fixture(scope="module")
def stoppy():
    model = make_tiny_model(init=0.2, seed=1)
    model.generation_config.eos_token_id = [2] + list(range(3, 49152, 8))
    return model


@pytest.fixture(scope="module")
def forcing(tokenizer):
    """One end token in six (none of the budget's forced tokens), chosen so greedy decoding tries to end thinking
    early (a continuation is injected) and later hits the thinking cap and the answer cap."""
    forced = set(tokenizer.encode("Wait\n<|im_start|>answer\nFinal Answer:", add_special_tokens=False))
    model = make_tiny_model(init=0.2, seed=2)
    model.generation_config.eos_token_id = [2] + [t for t in range(3, 49152, 6) if t not in forced]
    return model


def run(model, tokenizer, sampling=SAMPLED, questions=Q, prm="hashed", max_kv_tokens=None, **cfg):
    cfg = {"max_steps": 4, "max_step_tokens": 5, "delimiter": "e", **cfg}
    searcher = Searcher(model, tokenizer, SearchConfig(**cfg), prm=VerifierPRM(hashed) if prm == "hashed" else prm,
                        sampling=sampling, max_kv_tokens=max_kv_tokens)
    return searcher, searcher.search(questions)


def prompt_ids(result):
    tree = result.tree
    return tree[tree.problems[result.problem]["root"]].tokens


def generate_greedy(model, ids, steps, end_ids=(2,)):
    """The slow source of truth: plain greedy ``generate`` from the full sequence, no cache shared with anything."""
    x = torch.tensor([ids])
    out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=steps,
                         eos_token_id=list(end_ids), pad_token_id=2)
    return out[0, len(ids):].tolist()


# ─── exactness ─────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("strategy", ["beam", "dvts", "best-of-n"])
def test_width_one_greedy_equals_greedy_generation(lively, tokenizer, strategy):
    """Beam width 1 (and DVTS / best-of-1) under greedy decoding is greedy generation: steps never change tokens."""
    _, [r] = run(lively, tokenizer, GREEDY, strategy=strategy, n=1, beam_width=1, max_steps=6)
    [c] = r.completions
    path = r.tree.path(c.node)
    assert "delimiter" in [n.end for n in path] and path[-1].end == "length" and len(path) == 6
    tokens = r.tree.path_tokens(c.node)
    assert tokens == generate_greedy(lively, prompt_ids(r), len(tokens))


def test_dvts_with_one_subtree_equals_beam_search_with_n_equal_m(lively, tokenizer):
    cfg = dict(n=4, beam_width=4, max_steps=4, lookahead=1)
    _, [beam] = run(lively, tokenizer, strategy="beam", **cfg)
    _, [dvts] = run(lively, tokenizer, strategy="dvts", **cfg)
    tb, td = beam.tree.to_json(), dvts.tree.to_json()
    assert tb["nodes"] == td["nodes"] and tb["problems"][0].pop("strategy") == "beam" and td["problems"][0].pop("strategy") == "dvts"
    assert tb["problems"] == td["problems"]  # the same outcome: answer, votes, tally, chosen node
    assert [(c.text, c.score, c.step_scores) for c in beam.completions] == [(c.text, c.score, c.step_scores) for c in dvts.completions]
    first_steps = {n.text for n in beam.tree.nodes if n.depth == 1}
    assert len(first_steps) > 1  # sampled candidates really differ, so selection had something to choose
    # with two subtrees, the same first step: beam keeps the best N/M = 2 overall, DVTS the best of each subtree
    _, [beam8] = run(lively, tokenizer, strategy="beam", n=8, beam_width=4, max_steps=3)
    _, [dvts8] = run(lively, tokenizer, strategy="dvts", n=8, beam_width=4, max_steps=3)
    first_b = [n for n in beam8.tree.nodes if n.depth == 1]
    first_d = [n for n in dvts8.tree.nodes if n.depth == 1]
    assert [(n.tokens, n.score) for n in first_b] == [(n.tokens, n.score) for n in first_d]
    best = lambda idx: sorted(idx, key=lambda i: (-first_b[i].score, i))  # noqa: E731
    assert [i for i, n in enumerate(first_b) if n.status == "kept"] == sorted(best(range(8))[:2])
    assert [i for i, n in enumerate(first_d) if n.status == "kept"] == [best(range(4))[0], best(range(4, 8))[0]]


def test_lookahead_is_a_greedy_continuation_from_a_forked_branch(lively, tokenizer):
    """Each lookahead chain equals greedy generation from scratch after the candidate's (sampled) path; the
    candidate is ranked by the lookahead path's aggregated score, its own step scores are its path's."""
    _, [r] = run(lively, tokenizer, strategy="beam", n=4, beam_width=2, max_steps=4, lookahead=2, agg="min")
    tree = r.tree
    leaves = [n for n in tree.nodes if n.kind == "lookahead" and not n.children]
    assert leaves and all(n.status == "lookahead" for n in tree.nodes if n.kind == "lookahead")
    for leaf in leaves:
        chain = [n for n in tree.path(leaf.id) if n.kind == "lookahead"]
        cand = tree[chain[0].parent]
        ahead = [t for n in chain for t in n.tokens]
        assert ahead == generate_greedy(lively, prompt_ids(r) + tree.path_tokens(cand.id), len(ahead))
        assert cand.score == leaf.score == aggregate(leaf.step_scores, "min")
        assert leaf.step_scores == hashed(Q, tree.step_texts(leaf.id))
        assert cand.step_scores == hashed(Q, tree.step_texts(cand.id))


def test_budget_forcing_composes_with_best_of_n_and_beam(forcing, tokenizer):
    """Greedy best-of-N and width-1 beam search (a fork at every step) with budget forcing give exactly the tokens
    of the budget engine's one generate call: forced continuations, forced cap text and the answer cap included."""
    budget = BudgetConfig(min_thinking_tokens=8, max_thinking_tokens=20, num_ignore=1, max_answer_tokens=5)
    engine = ThinkingEngine(forcing, tokenizer, format="s1", system=DEFAULT_SYSTEM_PROMPT)
    [ref] = engine.generate([Q], budget, GREEDY)
    assert ref.waits_injected == 2 and ref.forced_stop and ref.finish_reason == "max_answer"
    results = {}
    for strategy, n in (("best-of-n", 2), ("beam", 1)):
        cfg = SearchConfig(strategy, n=n, beam_width=1, max_steps=40, max_step_tokens=8, delimiter="e")
        searcher = Searcher(forcing, tokenizer, cfg, prm=VerifierPRM(hashed), sampling=GREEDY, budget=budget)
        assert searcher.render(Q) == engine.render(Q)
        [results[strategy]] = searcher.search(Q)
    for strategy, n in (("best-of-n", 2), ("beam", 1)):
        r = results[strategy]
        assert len(r.completions) == n
        for c in r.completions:
            assert r.tree.path_tokens(c.node) == ref.token_ids
            assert c.budget == {"thinking_tokens": ref.thinking_tokens, "answer_tokens": ref.answer_tokens,
                                "forced_tokens": ref.forced_tokens, "waits_injected": ref.waits_injected,
                                "forced_stop": ref.forced_stop}
    assert len(results["beam"].completions[0].steps) > 3  # the branch really was forked step after step


def test_several_problems_in_one_loop_equal_one_at_a_time(lively, tokenizer):
    questions = [Q, "Name a prime number larger than 10.", "What is 7 * 8?"]
    cfg = dict(strategy="beam", n=2, beam_width=2, max_steps=4)
    searcher, together = run(lively, tokenizer, GREEDY, questions, batch_problems=3, **cfg)
    prompt = max(len(prompt_ids(r)) for r in together)
    worst = prompt + 2 * 4 * 5                                    # N branches of max_steps full steps, nothing shared
    assert searcher.batch_size(prompt) == 3
    small, alone = run(lively, tokenizer, GREEDY, questions, batch_problems=3, max_kv_tokens=2 * worst - 1, **cfg)
    assert small.batch_size(prompt) == 1                          # the memory cap splits the batch
    assert together[0].peak_kv_bytes > alone[0].peak_kv_bytes

    def view(r):
        nodes = r.tree.to_json(r.problem)["nodes"]
        return [(n["depth"], n["tokens"], n["status"], n["end"], n["score"]) for n in nodes]

    for a, b in zip(together, alone):
        assert view(a) == view(b) and a.answer == b.answer
        assert a.policy_forward_tokens == b.policy_forward_tokens and a.tree_tokens == b.tree_tokens


# ─── structure and accounting ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("strategy", ["beam", "dvts", "best-of-n", "weighted", "majority"])
def test_tree_selection_and_token_accounting(stoppy, tokenizer, strategy):
    searcher, [r] = run(stoppy, tokenizer, strategy=strategy, n=8, beam_width=4, max_steps=5, max_step_tokens=4, delimiter="a")
    cfg, tree, end_ids = searcher.config, r.tree, set(searcher.end_ids)
    assert (cfg.stepwise, cfg.uses_prm) == (strategy in ("beam", "dvts"), strategy != "majority")  # which checks below apply
    tree.check()
    steps = [n for n in tree.nodes if n.kind == "step"]
    assert {"stop", "cap", "delimiter"} <= {n.end for n in steps}  # each kind of step end below is checked
    # every token in the tree ran through the model exactly once, except the last token of each finished branch
    # (nothing reads its keys); the prompt was prefilled once for all N samples
    assert r.policy_forward_tokens == r.tree_tokens - sum(n.finished for n in steps)
    assert r.policy_forward_tokens <= 1.05 * r.tree_tokens
    assert r.tree_tokens == len(prompt_ids(r)) + sum(len(n.tokens) for n in steps)
    for n in steps:
        assert 1 <= len(n.tokens) <= cfg.max_step_tokens and n.depth <= cfg.max_steps
        assert (n.end == "stop") == (n.tokens[-1] in end_ids)
        if n.end == "delimiter":
            assert "a" in n.text.lstrip() and "a" not in searcher.tokenizer.decode(n.tokens[:-1]).lstrip()
        if n.end == "cap":
            assert len(n.tokens) == cfg.max_step_tokens and "a" not in n.text.lstrip()
        assert n.finished == (n.status == "finished") or n.status in ("duplicate",)
        assert not (n.finished and n.children)
        if n.depth == cfg.max_steps:
            assert n.finished
    finished = [n for n in steps if n.status == "finished"]
    assert sorted(c.node for c in r.completions) == sorted(n.id for n in finished)
    assert any(n.end == "stop" for n in finished) and any(n.end == "cap" for n in steps)
    if not cfg.stepwise:
        assert len(r.completions) == cfg.n and tree.count("pruned") == 0
        assert all(n.status == "kept" for n in steps if not n.finished)
    if cfg.uses_prm:
        assert all(c.step_scores == hashed(Q, c.steps) and c.score == c.step_scores[-1] for c in r.completions)
    else:
        assert all(c.score is None for c in r.completions) and r.answer == r.votes["majority"]
    if not cfg.stepwise:
        return
    width, keep = cfg.groups()[0]
    for depth in range(1, cfg.max_steps + 1):
        for group in {n.group for n in steps if n.depth == depth}:
            here = [n for n in steps if n.depth == depth and n.group == group]
            kept = [n for n in here if n.status == "kept"]
            pruned = [n for n in here if n.status == "pruned"]
            assert len(kept) <= keep and len(here) == width            # survivors refill the group to its width
            assert all(k.score >= p.score for k in kept for p in pruned)
            assert all(len(k.children) == c for k, c in zip(kept, [width // len(kept) + (i < width % len(kept)) for i in range(len(kept))]))
            texts = ["".join(tree.step_texts(n.id)) for n in here]
            for n in here:
                if n.status == "duplicate":
                    assert "".join(tree.step_texts(n.id)) in texts[: here.index(n)]


def test_default_prm_is_the_policy_scoring_incrementally(lively, tokenizer):
    searcher, [r] = run(lively, tokenizer, prm=None, strategy="beam", n=4, beam_width=2, max_steps=4, max_step_tokens=4)
    prm = searcher.prm
    assert prm.model is lively and prm.name == "rlhflow"
    assert prm.cached_tokens == 0  # every cached prefix was handed back
    scored = [n for n in r.tree.nodes if n.kind == "step" and n.step_scores is not None]
    assert all(len(n.step_scores) == n.depth for n in scored)
    full = sum(len(prm._tokenize(Q, tuple(prm.protocol.clean(s) for s in r.tree.step_texts(n.id)))[0]) for n in scored)
    assert 0 < r.prm_forward_tokens < full / 2  # re-scoring every prefix from scratch would run `full` tokens


def test_searcher_refusals(lively, tokenizer):
    with pytest.raises(TTScaleError, match="prm must be"):
        Searcher(lively, tokenizer, prm=lambda q, s: [1.0] * len(s))
    searcher = Searcher(lively, tokenizer, SearchConfig("majority", n=2))
    assert searcher.prm is None
    with pytest.raises(TTScaleError, match="no question"):
        searcher.search([])
    with pytest.raises(TTScaleError, match="empty"):
        searcher.search([Q, "  "])
    with pytest.raises(TTScaleError, match="not divisible"):
        replace(SearchConfig(), n=6)
