"""``ttscale generate PROMPT`` with no flags ends with an answer on the real SmolLM2, and hints when a row stops
inside thinking."""

import json

from conftest import run_cli as run

HINT = "ttscale: note: the model ended its turn inside thinking on 1 of 1 prompts"


def test_default_generate_has_thinking_and_an_answer(capsys, smol_dir):
    code, out, err = run(capsys, "generate", "What is 2+2?", "--model", smol_dir, "--json")
    assert code == 0
    row = json.loads(out)
    assert row["thinking"].strip() and row["answer"].strip(), row
    assert row["finish_reason"] == "stop"
    assert "format auto -> think-tags (the tokenizer has no thinking tokens; plain <think> tags)" in err
    assert "note:" not in err


def test_text_output_default(capsys, smol_dir):
    code, out, err = run(capsys, "generate", "What is 2+2?", "--model", smol_dir)
    assert code == 0
    thinking = out.split("── thinking")[1].split("\n", 1)[1].split("── answer")[0]
    answer = out.split("── answer")[1].split("\n", 1)[1]
    assert thinking.strip() and answer.strip(), out


def test_hint_when_a_row_stops_inside_thinking(capsys, smol_dir):
    # s1 delimiters on SmolLM2 (never trained on them), answering after an end of turn switched off: the model
    # ends its turn at once, inside thinking.
    code, out, err = run(capsys, "generate", "What is 2+2?", "--model", smol_dir, "--format", "s1",
                         "--no-answer-on-end-of-turn", "--json")
    assert code == 0
    assert json.loads(out)["finish_reason"] == "stop_in_thinking"
    assert HINT in err and "--format think-tags" in err and "--min-thinking-tokens" in err
