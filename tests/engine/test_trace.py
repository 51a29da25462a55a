"""Traces read back strictly: records of the wrong shape are refused in one sentence, a trace cut short says so."""

import json

import pytest
import torch

from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.logits.budget_state import BudgetConfig
from engine.trace import read_trace, render_trace

HEAD = {"type": "generation", "prompt_index": 0, "prompt": "Q", "thinking_tokens": 2, "answer_tokens": 1, "waits_injected": 0,
        "forced_stop": False, "finish_reason": "stop", "generated_tokens": 3}


def tok(pos, text, phase="thinking", kind="thinking"):
    return {"type": "token", "prompt_index": 0, "position": pos, "id": pos, "text": text, "phase": phase, "kind": kind,
            "source": "sampled", "reason": None, "prob": 0.5}


def write(path, records, torn=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + torn)
    return str(path)


def test_a_complete_trace_renders_without_a_warning(tmp_path):
    path = write(tmp_path / "t.jsonl", [HEAD, tok(0, "a"), tok(1, "b"), tok(2, "c", "answer", "answer")])
    text = render_trace(read_trace(path), color=False)
    assert "cut short" not in text and "abc" not in text and "── answer ──" in text


def test_a_trace_cut_short_says_so(tmp_path):
    whole = json.dumps(tok(2, "c", "answer", "answer"))
    path = write(tmp_path / "t.jsonl", [HEAD, tok(0, "a"), tok(1, "b")], torn=whole[:20])  # killed mid-write
    text = render_trace(read_trace(path), color=False)
    assert "trace cut short: 2 of this prompt's 3 token records are in the file" in text


@pytest.mark.parametrize("records, message", [
    ([{"type": "banana"}], "record 1: not a ttscale trace record (its type is 'banana')"),
    ([{"prompt": "Q"}], "record 1: not a ttscale trace record (it has no 'type' field)"),
    ([{k: v for k, v in HEAD.items() if k != "finish_reason"}], "record 1: a generation record without finish_reason"),
    ([HEAD, {k: v for k, v in tok(0, "a").items() if k not in ("text", "phase")}], "record 2: a token record without text, phase"),
    ([tok(0, "a"), HEAD], "record 1: a token of prompt 0 before (or without) that prompt's generation record"),
])
def test_records_of_the_wrong_shape_are_refused(tmp_path, records, message):
    path = write(tmp_path / "bad.jsonl", records)
    with pytest.raises(TTScaleError) as err:
        read_trace(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_trace_probability_entropy_and_top_k_match_a_plain_forward(tiny_model, tokenizer):
    """The slow source of truth: one forward pass over prompt + generated tokens. Greedy, no warpers, so the
    distribution the trace describes is softmax of the raw logits at each position (forced tokens included)."""
    engine = ThinkingEngine(tiny_model, tokenizer, format="s1")
    [res] = engine.generate(["What is 2 + 3?"], budget=BudgetConfig(min_thinking_tokens=6, max_thinking_tokens=12,
                                                                   max_answer_tokens=4), trace=True, trace_top_k=3)
    head, toks = res.trace[0], res.trace[1:]
    prompt = tokenizer(head["rendered_prompt"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    ids = torch.cat([prompt, torch.tensor([[t["id"] for t in toks]])], dim=1)
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(ids).logits[0, prompt.shape[1] - 1:-1].double(), dim=-1)
    ent = -(logp.exp() * logp).sum(-1)
    for k, t in enumerate(toks):
        assert abs(t["entropy"] - float(ent[k])) < 1e-3, k
        assert abs(t["prob"] - float(logp[k, t["id"]].exp())) < 1e-4, k
        assert [a[0] for a in t["top"]] == logp[k].topk(3).indices.tolist(), k
