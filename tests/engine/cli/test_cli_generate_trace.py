"""The ttscale command: generate (text, --json, --trace), trace show, and one-sentence errors."""

import json
import subprocess
import sys

import pytest
from conftest import run_cli as run


def test_generate_json_and_trace(capsys, tmp_path, smol_dir):
    trace = tmp_path / "t.jsonl"
    # Greedy SmolLM2 tries to end thinking before 8 tokens on both prompts and does not stop by itself before 10,
    # so this run has injected continuations and capped thinking: the trace markers of both are shown below.
    code, out, err = run(capsys, "generate", "What is 2+2?", "Name a color.", "--model", smol_dir, "--format", "s1",
                         "--min-thinking-tokens", "8", "--max-thinking-tokens", "10", "--max-answer-tokens", "6",
                         "--json", "--trace", str(trace))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["prompt"] for r in rows] == ["What is 2+2?", "Name a color."]
    for r in rows:
        for key in ("thinking", "answer", "thinking_tokens", "answer_tokens", "waits_injected", "forced_stop", "finish_reason"):
            assert key in r
        assert 8 <= r["thinking_tokens"] <= 10
    assert any(r["waits_injected"] for r in rows) and any(r["forced_stop"] for r in rows)
    assert "format s1" in err and "chat template" in err  # the user is told which format was used
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert sum(r["type"] == "generation" for r in records) == 2
    tokens = [r for r in records if r["type"] == "token"]
    assert {"id", "text", "position", "phase", "source", "reason", "prob", "top"} <= set(tokens[0])
    code, out, _ = run(capsys, "trace", "show", str(trace), "--no-color")
    assert code == 0 and "── thinking ──" in out and "── answer ──" in out
    assert "⟂[end" in out and "{min}" in out  # a suppressed end and the continuation the min budget forced
    assert "{cap}" in out                      # the text forced at the thinking cap


def test_generate_text_output(capsys, tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("What is 3+4?\n\n")
    code, out, _ = run(capsys, "generate", "--prompts-file", str(prompts), "--model", tiny_model_dir,
                       "--min-thinking-tokens", "8", "--max-thinking-tokens", "8", "--max-answer-tokens", "4")
    assert code == 0 and "── thinking (8 tokens" in out and "── answer (" in out


@pytest.mark.parametrize("argv, message", [
    (["generate", "x", "--min-thinking-tokens", "9", "--max-thinking-tokens", "3"], "larger than"),
    (["generate", "x", "--max-thinking-tokens", "-3"], ">= 1"),
    (["generate", "x", "--num-ignore", "-1"], ">= 0"),
    (["generate", "x", "--model", "no-such-model"], "unknown model name"),
    (["generate", "x", "--model", "/no/such/dir"], "no such file or directory"),
    (["generate", "x", "--model", "/no/such/file.gguf"], "no such GGUF file"),
    (["generate", ""], "empty"),
    (["generate", "--prompts-file", "/no/such/prompts.txt"], "cannot read it"),
    (["generate", "x", "--quantization", "8bit"], "needs a CUDA GPU"),
    (["generate", "x", "--format", "nope"], "unknown format"),
    (["trace", "show", "/no/such/trace.jsonl"], "no such file"),
])
def test_errors_are_one_sentence(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_delimiter_checked_against_model_tokenizer(capsys, smol_dir):
    code, _, err = run(capsys, "generate", "x", "--model", smol_dir, "--format", "custom", "--think-start", "<t>")
    assert code == 2 and "needs both" in err


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "engine.cli", "generate", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--min-thinking-tokens" in out.stdout and "--trace" in out.stdout


def test_a_real_trace_is_complete_and_says_nothing_of_cuts(capsys, tmp_path, tiny_model_dir):
    trace = tmp_path / "t.jsonl"
    code, _, _ = run(capsys, "generate", "What is 2+2?", "Name a color.", "--model", tiny_model_dir, "--max-thinking-tokens", "6",
                     "--max-answer-tokens", "3", "--json", "--trace", str(trace))
    assert code == 0
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    for head in (r for r in records if r["type"] == "generation"):
        tokens = [r for r in records if r["type"] == "token" and r["prompt_index"] == head["prompt_index"]]
        assert head["generated_tokens"] == len(tokens) > 0
    code, out, _ = run(capsys, "trace", "show", str(trace), "--no-color")
    assert code == 0 and "cut short" not in out
