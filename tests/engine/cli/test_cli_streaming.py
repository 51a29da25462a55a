"""Nothing lost, nothing cryptic: output locations are checked before any model loads, and rows are kept batch by
batch (stdout, the trace file, the search tree), so a Ctrl-C mid-run keeps what was finished and says where."""

import json
import os

import pytest
from conftest import run_cli as run

from engine.cli import common
from engine.engine import ThinkingEngine
from engine.logits.budget import BudgetConfig
from engine.search.searcher import Searcher

NO_MODEL = "/no/such/model"  # reaching the load would say "no such file or directory" instead


def _read_only_dir(tmp_path):
    """A folder that cannot be written, or a skip when this user (root) writes there anyway."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return folder
    os.remove(folder / "probe")
    folder.chmod(0o755)
    pytest.skip("this user writes into a 0o555 folder (root), so read-only cannot be tested here")


COMMANDS = {
    "generate --trace": (["generate", "What is 2+2?", "--model", NO_MODEL, "--trace"], "--trace"),
    "search --tree": (["search", "What is 2+2?", "--model", NO_MODEL, "--tree"], "--tree"),
}


def _refusal(capsys, argv, flag):
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"ttscale: error: {flag} ") and "no such file or directory" not in err, err
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_output_file_refusals_before_the_model_loads(capsys, tmp_path, command):
    argv, flag = COMMANDS[command]
    err = _refusal(capsys, [*argv, str(tmp_path / "missing" / "f.json")], flag)
    assert "does not exist; create it or give another path" in err
    err = _refusal(capsys, [*argv, str(tmp_path)], flag)
    assert "is a directory; give a file path" in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_output_file_in_a_read_only_folder(capsys, tmp_path, command):
    argv, flag = COMMANDS[command]
    folder = _read_only_dir(tmp_path)
    try:
        err = _refusal(capsys, [*argv, str(folder / "f.json")], flag)
        assert "cannot write there" in err and "writable folder" in err
        assert not os.listdir(folder)
    finally:
        folder.chmod(0o755)


def test_output_file_check_leaves_no_trace_of_itself(capsys, tmp_path):
    target = tmp_path / "t.jsonl"
    code, _, err = run(capsys, "generate", "x", "--model", NO_MODEL, "--trace", str(target))
    assert code == 2 and "no such file or directory" in err  # the check passed; the load failed
    assert not target.exists()


def test_eval_out_refusals_before_the_model_loads(capsys, tmp_path):
    argv = ["eval", "--dataset", "synthetic", "--limit", "2", "--model", NO_MODEL, "--out"]
    err = _refusal(capsys, [*argv, str(tmp_path / "missing" / "run")], "--out")
    assert "parent folder" in err and "does not exist" in err
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    err = _refusal(capsys, [*argv, str(a_file)], "--out")
    assert "is a file, not a directory" in err


def test_eval_out_in_a_read_only_folder(capsys, tmp_path):
    argv = ["eval", "--dataset", "synthetic", "--limit", "2", "--model", NO_MODEL, "--out"]
    folder = _read_only_dir(tmp_path)
    try:
        err = _refusal(capsys, [*argv, str(folder / "run")], "--out")
        assert "cannot write in" in err
        assert not os.listdir(folder)
    finally:
        folder.chmod(0o755)


def test_unwritable_locations_even_as_root(capsys, monkeypatch, tmp_path):
    """The refusal itself, for users (root) whom a read-only folder does not stop: the probe's OSError is the cause."""
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(common, "open", denied, raising=False)
    monkeypatch.setattr(common.tempfile, "mkstemp", denied)
    err = _refusal(capsys, ["generate", "x", "--model", NO_MODEL, "--trace", str(tmp_path / "t.jsonl")], "--trace")
    assert "cannot write there (PermissionError: Permission denied); give a path in a writable folder" in err
    err = _refusal(capsys, ["eval", "--dataset", "synthetic", "--model", NO_MODEL, "--out", str(tmp_path / "run")], "--out")
    assert f"cannot write in {tmp_path} (PermissionError: Permission denied)" in err


def _interrupt_on_call(monkeypatch, cls, name, call):
    """Patch ``cls.name`` to raise KeyboardInterrupt on its ``call``-th call (1-based); returns the call counter."""
    real = getattr(cls, name)
    calls = []

    def patched(self, *a, **k):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(cls, name, patched)
    return calls


def test_generate_interrupted_keeps_finished_rows(capsys, monkeypatch, tmp_path, tiny_model_dir):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"type": "generation", "stale": true}\n')  # a rerun starts the trace afresh
    _interrupt_on_call(monkeypatch, ThinkingEngine, "_generate_batch", 3)
    code, out, err = run(capsys, "generate", "one?", "two?", "three?", "--model", tiny_model_dir, "--batch-size", "1",
                         "--min-thinking-tokens", "4", "--max-thinking-tokens", "4", "--max-answer-tokens", "2",
                         "--json", "--trace", str(trace))
    assert code == 130
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["prompt"] for r in rows] == ["one?", "two?"]
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    heads = [r for r in records if r["type"] == "generation"]
    assert [h["prompt"] for h in heads] == ["one?", "two?"] and not any(r.get("stale") for r in records)
    assert f"interrupted after 2 of 3 rows; the 2 finished rows are on stdout; {trace} holds their {len(records)} trace records" in err
    assert "Traceback" not in err


def test_generate_text_rows_are_numbered_against_all_prompts(capsys, tiny_model_dir):
    code, out, _ = run(capsys, "generate", "one?", "two?", "--model", tiny_model_dir, "--batch-size", "1",
                       "--max-thinking-tokens", "2", "--max-answer-tokens", "2")
    assert code == 0 and "━━ [1/2] one?" in out and "━━ [2/2] two?" in out


def test_search_interrupted_keeps_finished_rows_and_tree(capsys, monkeypatch, tmp_path, tiny_model_dir):
    tree_file = tmp_path / "tree.json"
    _interrupt_on_call(monkeypatch, Searcher, "_search_batch", 2)
    code, out, err = run(capsys, "search", "What is 1 + 1?", "What is 2 + 2?", "--model", tiny_model_dir,
                         "--strategy", "best-of-n", "--n", "2", "--max-steps", "1", "--max-step-tokens", "4",
                         "--seed", "0", "--batch-problems", "1", "--verifier", "engine.search.verifiers:arithmetic",
                         "--json", "--tree", str(tree_file))
    assert code == 130, err
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["question"] == "What is 1 + 1?"
    tree = json.loads(tree_file.read_text())
    assert [p["question"] for p in tree["problems"]] == ["What is 1 + 1?"]
    assert f"interrupted after 1 of 2 rows; the 1 finished row is on stdout; {tree_file} holds their search tree ({len(tree['nodes'])} nodes)" in err
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]  # the atomic write left no temporary file


def test_iter_generate_yields_each_batch_before_computing_the_next(monkeypatch, tiny_model, tokenizer):
    engine = ThinkingEngine(tiny_model, tokenizer, format="s1")
    calls = _interrupt_on_call(monkeypatch, ThinkingEngine, "_generate_batch", 0)  # counts, never interrupts
    budget = BudgetConfig(max_thinking_tokens=2, max_answer_tokens=2)
    batches = engine.iter_generate(["a?", "b?", "c?"], budget, batch_size=2)
    assert calls == []  # nothing computed before the first next
    first = next(batches)
    assert [r.prompt for r in first] == ["a?", "b?"] and len(calls) == 1
    second = next(batches)
    assert [r.prompt for r in second] == ["c?"] and len(calls) == 2
    assert next(batches, None) is None
    assert [r.prompt for r in engine.generate(["a?", "b?", "c?"], budget, batch_size=2)] == ["a?", "b?", "c?"]


def test_iter_generate_refuses_when_called(tiny_model, tokenizer):
    engine = ThinkingEngine(tiny_model, tokenizer, format="s1")
    with pytest.raises(Exception, match="no prompts given"):
        engine.iter_generate([])
