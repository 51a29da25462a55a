"""The answer budget, defined once: ``max_answer_tokens`` caps the model's own answer tokens and is never exceeded;
the forced delimiter and ``Final Answer:`` prefix are ``forced_tokens``, counted apart, and eat none of the allowance.

Checked against the raw token ids with an accounting that does not use the machine's counters: every generated id is
thinking, forced text, the model's answer or the end of turn, and the four counts add up to the ids generated.
"""

import pytest

from engine.engine import ThinkingEngine
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig

PROMPTS = ["hello there", "what is two plus two, and why?", "count to five"]


def bias(tokenizer, fmt, value):
    """Push the end tokens up (transformers' own sequence_bias) so that some rows end thinking by themselves."""
    ends = {tokenizer.encode(fmt.think_end, add_special_tokens=False)[0], tokenizer.eos_token_id}
    return {"sequence_bias": {(t,): value for t in ends}}


@pytest.fixture(scope="module", params=["s1", "think-tags"])
def engine(request, tiny_model, tokenizer):
    return ThinkingEngine(tiny_model, tokenizer, format=request.param)


def _raw_accounting(engine, r, budget):
    """(thinking, forced, own delimiter, answer, end) counts of ``r.token_ids`` from the ids and the budget strings alone."""
    tokens = engine.budget_tokens(budget)
    ids = list(r.token_ids)
    ends = set(tokens.end_ids)
    end = sum(1 for t in ids[-1:] if t in ends)
    body = ids[:len(ids) - end]
    forced_text = list(tokens.cap) + list(tokens.answer_prefix)
    if r.forced_stop:  # the cap: the thinking, then the cap text and the prefix, then the model's answer
        at = next(i for i in range(len(body)) if body[i:i + len(forced_text)] == forced_text)
        return at, len(forced_text), 0, len(body) - at - len(forced_text), end
    delim = list(tokens.think_end)
    at = next((i for i in range(len(body)) if body[i:i + len(delim)] == delim), None)
    if at is None:
        return len(body), 0, 0, 0, end
    # the model began the delimiter itself (its first token is the model's); the budget forced the rest
    return at, len(delim) - 1, 1, len(body) - at - len(delim), end


@pytest.mark.parametrize("greedy", [True, False])
@pytest.mark.parametrize("max_answer", [1, 3])
@pytest.mark.parametrize("max_thinking", [4, 9])
def test_answer_cap_is_the_models_own_answer(engine, greedy, max_answer, max_thinking):
    budget = BudgetConfig(max_thinking_tokens=max_thinking, max_answer_tokens=max_answer)
    sampling = SamplingConfig() if greedy else SamplingConfig(temperature=1.0, seed=max_answer + 10 * max_thinking)
    kw = bias(engine.tokenizer, engine.format, 0.8) if max_thinking == 9 else {}  # some rows end thinking by themselves
    results = engine.generate(PROMPTS, budget, sampling, batch_size=3, **kw)
    assert any(r.forced_stop for r in results)
    for r in results:
        assert r.answer_tokens <= max_answer, (r.answer_tokens, max_answer)
        thinking, forced, own_delimiter, answer, end = _raw_accounting(engine, r, budget)
        assert (r.thinking_tokens, r.forced_tokens, r.answer_tokens) == (thinking, forced, answer)
        assert thinking + forced + own_delimiter + answer + end == len(r.token_ids)
        if r.forced_stop:
            assert r.forced_tokens == len(engine.budget_tokens(budget).cap) + len(engine.budget_tokens(budget).answer_prefix)
            assert r.finish_reason == "max_answer" or r.answer_tokens < max_answer  # the model got its whole allowance


def test_the_issue_example_think_tags_cap_4_answer_2(tiny_model, tokenizer):
    """think-tags, max_thinking_tokens=4, max_answer_tokens=2: the forced ``\\n\\nFinal Answer:`` no longer counts as
    answer (it reported answer_tokens=5); the model writes exactly 2 answer tokens after it, then the turn ends."""
    engine = ThinkingEngine(tiny_model, tokenizer, format="think-tags")
    budget = BudgetConfig(max_thinking_tokens=4, max_answer_tokens=2)
    r = engine.generate(["What is 2+2?"], budget)[0]
    tokens = engine.budget_tokens(budget)
    assert r.forced_stop and (r.thinking_tokens, r.answer_tokens) == (4, 2)
    assert r.forced_tokens == len(tokens.cap) + len(tokens.answer_prefix)
    assert r.finish_reason == "max_answer" and r.answer.startswith("Final Answer:")
    assert len(r.token_ids) == 4 + r.forced_tokens + 2 + 1  # thinking, forced text, the model's 2 answer tokens, end
    assert r.to_json()["forced_tokens"] == r.forced_tokens
