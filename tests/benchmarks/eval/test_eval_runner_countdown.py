"""The step-conditional countdown processor: a scripted 'model' shows exactly where lines are forced; both plug-ins agree."""

import pytest
import torch
from conftest import make_tiny_model

from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.logits.budget import BudgetConfig
from engine.logits.countdown import CountdownProcessor, countdown_template

V = 49152


def script(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def drive(proc, tokenizer, planned, plug="processor", prompt_len=3):
    """Feed a scripted continuation: whenever the processor forces a token it is taken, else the next planned token."""
    ids = torch.full((1, prompt_len), 5)
    planned = list(planned)
    while planned:
        if plug == "processor":
            out = proc(ids, torch.zeros(1, V))
            allowed = torch.isfinite(out[0]).nonzero().flatten()
        else:
            allowed = proc.allowed_tokens(0, ids[0])
        tok = int(allowed[0]) if len(allowed) == 1 else planned.pop(0)
        ids = torch.cat([ids, torch.tensor([[tok]])], dim=1)
    return tokenizer.decode(ids[0, prompt_len:].tolist(), skip_special_tokens=False)


@pytest.mark.parametrize("plug", ["processor", "prefix_fn"])
def test_countdown_before_each_blank_line_step_down_to_zero(tokenizer, plug):
    proc = CountdownProcessor(tokenizer, steps=2, think_end="</think>", vocab_size=V)
    planned = script(tokenizer, "First.\n\nSecond.\n\nThird.\n\nFourth.\n\n</think>\n\nAnswer: 3")
    text = drive(proc, tokenizer, planned, plug)
    assert text == ("<|im_start|>2 steps left\nFirst.\n\n<|im_start|>1 steps left\nSecond.\n\n<|im_start|>0 steps left\n"
                    "Third.\n\nFourth.\n\n</think>\n\nAnswer: 3")
    assert proc.states[0].inserted == 3 and proc.states[0].done


def test_no_countdown_after_thinking_ends_and_blank_lines_alone_are_not_steps(tokenizer):
    proc = CountdownProcessor(tokenizer, steps=3, think_end="</think>", vocab_size=V)
    planned = script(tokenizer, "\n\nA.\n\n</think>\n\nB.\n\nC.\n\n")
    text = drive(proc, tokenizer, planned)
    # "\n\n" right after the countdown line is no step; after </think> nothing is inserted any more.
    assert text == "<|im_start|>3 steps left\n\n\nA.\n\n<|im_start|>2 steps left\n</think>\n\nB.\n\nC.\n\n"


def test_a_forced_line_overridden_by_another_processor_stops_the_countdown(tokenizer):
    proc = CountdownProcessor(tokenizer, steps=2, think_end="</think>", vocab_size=V)
    ids = torch.full((1, 3), 5)
    first = proc(ids, torch.zeros(1, V))
    forced = int(torch.isfinite(first[0]).nonzero().flatten()[0])
    other = forced + 1  # a budget cap forced something else at this step
    proc(torch.cat([ids, torch.tensor([[other]])], dim=1), torch.zeros(1, V))
    assert proc.states[0].done and not proc.states[0].queue


def test_processor_never_edits_scores_in_place(tokenizer):
    proc = CountdownProcessor(tokenizer, steps=1, think_end="</think>", vocab_size=V)
    scores = torch.randn(2, V)
    before = scores.clone()
    out = proc(torch.full((2, 3), 5), scores)
    assert torch.equal(scores, before) and not torch.equal(out, scores)


def test_refusals(tokenizer):
    with pytest.raises(TTScaleError, match="integer >= 1"):
        CountdownProcessor(tokenizer, steps=0, think_end="</think>")
    with pytest.raises(TTScaleError, match="no '\\{k\\}' field"):
        CountdownProcessor(tokenizer, steps=2, think_end="</think>", template="steps left\n")
    with pytest.raises(TTScaleError, match="needs vocab_size"):
        CountdownProcessor(tokenizer, steps=2, think_end="</think>").allowed_tokens(0, torch.tensor([1, 2]))
    assert countdown_template(tokenizer).startswith("<|im_start|>")


def test_rides_along_engine_generate_and_counts_as_thinking(tokenizer):
    """Through ``ThinkingEngine.generate(prefix_allowed_tokens_fn=...)``: the line opens thinking in every row, is
    counted as thinking, and budget forcing's answer cap still applies."""
    engine = ThinkingEngine(make_tiny_model(), tokenizer, format="think-tags")
    proc = CountdownProcessor(tokenizer, steps=4, think_end="</think>", vocab_size=V)
    results = engine.generate(["What is 2 + 3?", "What is 7 * 3?"], BudgetConfig(max_answer_tokens=4), max_new_tokens=12,
                              prefix_allowed_tokens_fn=proc.allowed_tokens)
    line = tokenizer.encode("<|im_start|>4 steps left\n", add_special_tokens=False)
    for r in results:
        assert r.token_ids[: len(line)] == line
        assert r.thinking_tokens == 12 and r.finish_reason == "length"
    assert [st.inserted for st in proc.states] == [1, 1]
