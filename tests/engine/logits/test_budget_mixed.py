"""One budget per row: a batch mixing budgets gives every row exactly what running it alone with its budget gives.

Tiny random Llama with SmolLM2's tokenizer; a logit bias on the end tokens (transformers' ``sequence_bias``) makes
greedy decoding try to end thinking every few tokens, so each budget's rules really act. The prompts differ in
length: left padding does not change this model's greedy output (``test_budget.py::test_batch_row_equals_alone``
checks the same with one shared budget), so any difference here would come from the budgets leaking across rows.
This model never ends a watch-only row by itself, so the exactness test passes the same explicit ``max_new_tokens``
alone and batched (rows that run to it are cut at the same place); the per-batch default cap is checked apart.
"""

from dataclasses import asdict

import pytest
import torch

from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.logits.budget import BudgetConfig, BudgetForcingProcessor, BudgetTokens

PROMPTS = ["hello there", "what is two plus two, and why?", "count to five", "name a colour"]
CAP = 48
BUDGETS = [
    BudgetConfig(min_thinking_tokens=8, max_thinking_tokens=12, max_answer_tokens=4),
    BudgetConfig(num_ignore=2, max_thinking_tokens=20),
    BudgetConfig(max_answer_tokens=3),                                            # no thinking budget: watch only
    BudgetConfig(min_thinking_tokens=4, max_thinking_tokens=30, ignore_strs=("Hmm", "Wait"),
                 final_answer_str="Answer:", max_answer_tokens=5),
]


def bias(engine, value):
    ends = {engine.tokenizer.encode(engine.format.think_end, add_special_tokens=False)[0], engine.tokenizer.eos_token_id}
    return {"sequence_bias": {(t,): value for t in ends}}


@pytest.fixture(scope="module")
def engine(tiny_model, tokenizer):
    return ThinkingEngine(tiny_model, tokenizer, format="s1")


def summary(r):
    return (r.token_ids, r.thinking_tokens, r.answer_tokens, r.forced_tokens, r.waits_injected, r.forced_stop, r.finish_reason)


def test_mixed_budgets_in_one_batch_equal_each_row_alone(engine):
    kw = bias(engine, 3.0)
    together = engine.generate(PROMPTS, BUDGETS, batch_size=4, max_new_tokens=CAP, trace=True, **kw)
    alone = [engine.generate([p], b, max_new_tokens=CAP, **kw)[0] for p, b in zip(PROMPTS, BUDGETS)]
    for row, ref in zip(together, alone):
        assert summary(row) == summary(ref)
    # The four rows really are budgeted differently: each rule left its mark.
    a, b, c, d = together
    assert a.waits_injected > 0 and 8 <= a.thinking_tokens <= 12
    assert b.waits_injected == 2 and b.thinking_tokens <= 20
    assert c.waits_injected == 0 and not c.forced_stop
    assert d.thinking_tokens >= 4 and d.answer_tokens <= 5
    assert len({(r.thinking_tokens, r.waits_injected, r.finish_reason) for r in together}) == 4
    # Each trace header records that row's own budget; injected text follows that row's own strings.
    for r, budget in zip(together, BUDGETS):
        assert r.trace[0]["budget"] == asdict(budget)
    injected = "".join(t["text"] for t in d.trace[1:] if t["reason"] in ("min_budget", "ignore"))
    assert injected.startswith("Hmm") and "Final Answer:" not in engine.tokenizer.decode(d.token_ids)


def test_a_batch_runs_to_the_largest_cap_of_its_rows(engine, monkeypatch):
    seen = []

    def record(self, prompts, texts, budgets, sampling, tokens, cap, *rest):
        seen.append((list(budgets), cap))
        return []

    monkeypatch.setattr(ThinkingEngine, "_generate_batch", record)
    engine.generate(PROMPTS, BUDGETS, batch_size=2)
    caps = [engine.max_new_tokens(b, engine.budget_tokens(b)) for b in BUDGETS]
    assert seen == [(BUDGETS[:2], max(caps[:2])), (BUDGETS[2:], max(caps[2:]))]
    assert caps[0] < caps[1]  # the first batch really takes the larger one


def test_budget_list_must_match_the_prompts(engine):
    with pytest.raises(TTScaleError, match="2 budgets for 4 prompts"):
        engine.generate(PROMPTS, BUDGETS[:2])
    with pytest.raises(TTScaleError, match=r"budget\[1\] must be a BudgetConfig"):
        engine.generate(PROMPTS[:2], [BUDGETS[0], {"max_thinking_tokens": 3}])


def test_processor_refuses_a_budget_list_of_the_wrong_length(engine):
    tokens = engine.budget_tokens(BUDGETS[0])
    proc = BudgetForcingProcessor(tokens, BUDGETS[:3])
    with pytest.raises(TTScaleError, match="lists 3 rows but the batch has 2"):
        proc(torch.zeros((2, 3), dtype=torch.long), torch.zeros((2, 10)))
    with pytest.raises(TTScaleError, match="pass one BudgetTokens per BudgetConfig"):
        BudgetForcingProcessor([tokens, tokens], BUDGETS[:3])
    other = BudgetTokens(tokens.think_end, tokens.cap, tokens.answer_prefix, tokens.continuations, (7,))
    with pytest.raises(TTScaleError, match="must share the delimiter, EOS and end-of-turn"):
        BudgetForcingProcessor([tokens, other], BUDGETS[:2])
