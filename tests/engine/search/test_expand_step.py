"""``Expander.step``: one token per call, rows may join between calls, and greedy rows get what they get alone.

An outside scheduler (a server) drives decoding one token at a time and adds rows between steps. Here rows A and B
start together, take three steps, then row C (a new prompt, prefilled only then) joins; every row's greedy tokens
must equal expanding it alone on a fresh cache. Once with plain rows on a tiny random Llama, once with per-row budget
forcing (different budgets per row) on a model whose end tokens make it try to end thinking early.
"""

import pytest
import torch
from conftest import make_tiny_model

from engine.formats import get_format
from engine.kv_cache import KVCacheManager
from engine.logits.budget import BudgetConfig, BudgetTokens
from engine.logits.sampling import SamplingConfig
from engine.search.expand import BranchBudget, Expander, Row

PROMPTS = ["What is 2 + 3?", "Name a prime number.", "Why is the sky blue?"]
BUDGETS = [BudgetConfig(min_thinking_tokens=8, max_thinking_tokens=20, num_ignore=1, max_answer_tokens=5),
           BudgetConfig(max_thinking_tokens=12, max_answer_tokens=3),
           BudgetConfig(min_thinking_tokens=4, max_thinking_tokens=16, ignore_strs=("Hmm",), max_answer_tokens=4)]


@pytest.fixture(scope="module")
def lively():
    return make_tiny_model(init=0.2)


@pytest.fixture(scope="module")
def forcing(tokenizer):
    """As in test_search.py: one end token in six (none of the forced tokens), so greedy decoding tries to end."""
    forced = set(tokenizer.encode("Wait Hmm\n<|im_start|>answer\nFinal Answer:", add_special_tokens=False))
    model = make_tiny_model(init=0.2, seed=2)
    model.generation_config.eos_token_id = [2] + [t for t in range(3, 49152, 6) if t not in forced]
    return model


def setup(model, tokenizer, with_budget):
    eos = model.generation_config.eos_token_id
    fmt = get_format("s1")
    tokens = [BudgetTokens.build(tokenizer, fmt, b, eos) for b in BUDGETS]
    end_ids = tokens[0].end_ids if with_budget else (2,)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]

    def make_row(mgr, i):
        budget = BranchBudget(tokens[i], BUDGETS[i], greedy=True, seed=None) if with_budget else None
        return Row(mgr.prefill(ids[i]), steps_wanted=None, greedy=True, budget=budget)

    def expander(mgr):
        return Expander(mgr, tokenizer, end_ids, "e", max_steps=12, max_step_tokens=5, sampling=SamplingConfig(),
                        generator=torch.Generator().manual_seed(0))

    return make_row, expander


def tokens_of(row):
    return [t for s in row.steps for t in s.tokens]


@pytest.mark.parametrize("with_budget", [False, True], ids=["plain", "budget"])
def test_rows_joining_between_steps_equal_each_row_alone(lively, forcing, tokenizer, with_budget):
    model = forcing if with_budget else lively
    make_row, expander = setup(model, tokenizer, with_budget)
    alone = []
    for i in range(3):
        mgr = KVCacheManager(model)
        row = make_row(mgr, i)
        expander(mgr).expand([row])
        alone.append(row)
        mgr.release(row.branch)

    mgr = KVCacheManager(model)
    exp = expander(mgr)
    a, b = make_row(mgr, 0), make_row(mgr, 1)
    active = [a, b]
    for k in range(3):
        active = exp.step(active)
        assert [len(tokens_of(r)) + len(r._current) for r in (a, b)] == [k + 1, k + 1]  # one token each per step
    assert active == [a, b]
    c = make_row(mgr, 2)  # joins now: prefilled after A and B have decoded three tokens
    active.append(c)
    while active:
        active = exp.step(active)
    assert exp.step([a, b, c]) == []  # done rows are left alone
    for got, want in zip((a, b, c), alone):
        assert tokens_of(got) == tokens_of(want)
        assert [s.end for s in got.steps] == [s.end for s in want.steps]
        assert got.computed == want.computed
        if with_budget:
            g, w = got.budget.state(), want.budget.state()
            assert (g.thinking_tokens, g.answer_tokens, g.forced_tokens, g.injections, g.forced_stop, g.finish_reason) == \
                   (w.thinking_tokens, w.answer_tokens, w.forced_tokens, w.injections, w.forced_stop, w.finish_reason)
    assert len({tuple(tokens_of(r)) for r in (a, b, c)}) == 3
    if with_budget:  # the rules really acted: a continuation was injected and an answer cap closed a row
        states = [r.budget.state() for r in (a, b, c)]
        assert any(s.injections for s in states) and any(s.finish_reason == "max_answer" for s in states)
    mgr.release([a.branch, b.branch, c.branch])
    mgr.check_invariants()
    assert mgr.stats().branches == 0
