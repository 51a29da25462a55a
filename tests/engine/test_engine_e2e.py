"""End-to-end budget forcing on the real embedded SmolLM2-135M-Instruct (s1 format, chat template)."""

import pytest

from engine.engine import ThinkingEngine
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig

QUESTIONS = ["How many r's are in the word strawberry?", "What is 12 times 13?", "Name a prime number above 20.",
             "Is 91 a prime number?"]


@pytest.fixture(scope="module")
def engine(smol):
    return ThinkingEngine(smol.model, smol.tokenizer, format="s1")


@pytest.mark.parametrize("sampling", [SamplingConfig(), SamplingConfig(temperature=0.8, top_p=0.95, seed=0),
                                      SamplingConfig(temperature=1.0, seed=1)], ids=["greedy", "seed0", "seed1"])
def test_budgets_hold_on_the_real_model(engine, sampling):
    budget = BudgetConfig(min_thinking_tokens=16, max_thinking_tokens=32, max_answer_tokens=8)
    results = engine.generate(QUESTIONS, budget, sampling, batch_size=4, trace=True)
    for r in results:
        assert 16 <= r.thinking_tokens <= 32
        assert r.answer_tokens <= 8
        assert r.finish_reason in ("stop", "max_answer")
        assert sum("suppressed_end" in t for t in r.trace[1:]) == r.waits_injected
    # SmolLM2 tries to end thinking early, so the min budget must have injected continuations somewhere.
    assert sum(r.waits_injected for r in results) > 0


def test_cap_forces_the_answer_on_the_real_model(engine):
    """min = max: ending is suppressed until the cap, so every row is stopped there and answers after the cap text."""
    budget = BudgetConfig(min_thinking_tokens=16, max_thinking_tokens=16, max_answer_tokens=8)
    results = engine.generate(QUESTIONS[:2], budget, SamplingConfig(temperature=0.8, top_p=0.95, seed=0), batch_size=2)
    for r in results:
        assert r.forced_stop and r.thinking_tokens == 16 and r.answer.startswith("Final Answer:")
        assert r.answer_tokens <= 8 and r.finish_reason in ("stop", "max_answer")


def test_num_ignore_on_the_real_model(engine):
    results = engine.generate(QUESTIONS, BudgetConfig(num_ignore=2, max_thinking_tokens=64, max_answer_tokens=6),
                              SamplingConfig(temperature=0.7, seed=4), batch_size=4)
    assert all(r.waits_injected == 2 for r in results if not r.forced_stop)
    assert all(r.waits_injected <= 2 for r in results)
    assert any(not r.forced_stop for r in results)


def test_greedy_row_in_batch_equals_alone(engine):
    budget = BudgetConfig(min_thinking_tokens=8, max_thinking_tokens=16, max_answer_tokens=6)
    batch = engine.generate(QUESTIONS[:3], budget, batch_size=3)
    alone = engine.generate(QUESTIONS[1:2], budget)[0]
    assert batch[1].token_ids == alone.token_ids
