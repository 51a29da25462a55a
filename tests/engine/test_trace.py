"""Traces read back strictly: records of the wrong shape are refused in one sentence, a trace cut short says so."""

import json

import pytest

from engine.errors import TTScaleError
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
