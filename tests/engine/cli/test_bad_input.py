"""Bad input across every command: exit status 2, one ``ttscale: error:`` line naming the flag or file, no
traceback, nothing on stdout — and, but for the few cases that can only show once a model runs (``{tiny}``: the
tiny random model), all of it before a model loads (``--model`` points nowhere: reaching the load would be a
different error)."""

import pytest

from engine.cli.main import main

NOWHERE = "/no/such/model/dir"


def _files(tmp_path):
    """Input files of the wrong kind, written on demand."""
    (tmp_path / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff")
    (tmp_path / "null_prompt.jsonl").write_text('{"prompt": null}\n')
    (tmp_path / "list_prompt.jsonl").write_text('{"prompt": ["a", "b"]}\n')
    (tmp_path / "no_field.jsonl").write_text('{"text": "What is 2+2?"}\n')
    (tmp_path / "bad_json.jsonl").write_text('{"prompt": "ok"}\n{"prompt": \n')
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "array.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "typo.yaml").write_text("max_thinking_tokenz: 3\n")
    (tmp_path / "wrong_type.yaml").write_text("batch_size: many\n")
    (tmp_path / "trace_bad.jsonl").write_text('{"no_type": 1}\n')
    (tmp_path / "trace_text.jsonl").write_text("not json at all\n")
    (tmp_path / "dataset.jsonl").write_text('{"q": "What is 1 + 1?", "a": "2"}\n')
    return tmp_path


CASES = [
    # generate: values
    (["generate", "x", "--max-thinking-tokens", "0"], "--max-thinking-tokens must be >= 1"),
    (["generate", "x", "--min-thinking-tokens", "-1"], "--min-thinking-tokens must be >= 0"),
    (["generate", "x", "--min-thinking-tokens", "9", "--max-thinking-tokens", "3"], "--min-thinking-tokens (9) is larger than --max-thinking-tokens (3)"),
    (["generate", "x", "--num-ignore", "-2"], "--num-ignore must be >= 0"),
    (["generate", "x", "--max-answer-tokens", "0"], "--max-answer-tokens must be >= 1"),
    (["generate", "x", "--ignore-str", ""], "--ignore-str must be non-empty"),
    (["generate", "x", "--temperature", "-1"], "--temperature must be a number >= 0"),
    (["generate", "x", "--temperature", "nan"], "--temperature must be a number >= 0"),
    (["generate", "x", "--temperature", "inf"], "--temperature must be a number >= 0"),
    (["generate", "x", "--top-p", "0"], "--top-p must be in (0, 1]"),
    (["generate", "x", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["generate", "x", "--top-k", "-1"], "--top-k must be an integer >= 0"),
    (["generate", "x", "--seed", "-5"], "--seed must be an integer >= 0"),
    (["generate", "x", "--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["generate", "x", "--max-new-tokens", "0"], "--max-new-tokens must be an integer >= 1"),
    (["generate", "x", "--batch-size", "abc"], "argument --batch-size: invalid int value: 'abc'"),
    (["generate", "x", "--temperature", "hot"], "argument --temperature: invalid float value: 'hot'"),
    (["generate", "x", "--template", "fancy"], "argument --template: invalid choice: 'fancy'"),
    (["generate", "x", "--quantization", "2bit"], "argument --quantization: invalid choice: '2bit'"),
    (["generate", "x", "--format", "nope"], "--format nope: unknown format"),
    (["generate", "x", "--format", "custom", "--think-end", "</t>"], "--format custom needs both --think-start and --think-end"),
    (["generate", "x", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["generate"], "no prompt given"),
    (["generate", "   "], "a prompt is empty"),
    # generate: files
    (["generate", "--prompts-file", "/no/such/prompts.txt"], "--prompts-file /no/such/prompts.txt: cannot read it"),
    (["generate", "--prompts-file", "{d}/binary.jsonl"], "binary.jsonl: cannot read it"),
    (["generate", "--prompts-file", "{d}/null_prompt.jsonl"], "line 1: the prompt field must be text, got None"),
    (["generate", "--prompts-file", "{d}/list_prompt.jsonl"], "line 1: the prompt field must be text"),
    (["generate", "--prompts-file", "{d}/no_field.jsonl"], "line 1: a JSON row needs a prompt, question or problem field"),
    (["generate", "--prompts-file", "{d}/bad_json.jsonl"], "bad_json.jsonl, line 2: not valid JSON"),
    (["generate", "--prompts-file", "{d}/empty.txt"], "the file holds no prompts"),
    (["generate", "x", "--config", "/no/such.yaml"], "--config /no/such.yaml: no such file"),
    (["generate", "x", "--config", "{d}/array.yaml"], "must be a mapping of settings"),
    (["generate", "x", "--config", "{d}/typo.yaml"], "unknown key 'max_thinking_tokenz'; did you mean 'max_thinking_tokens'?"),
    (["generate", "x", "--config", "{d}/wrong_type.yaml"], "batch_size must be an integer, got 'many'"),
    # search
    (["search", "x", "--n", "0"], "--n must be an integer >= 1, got 0"),
    (["search", "x", "--n", "6", "--beam-width", "4"], "--n 6 is not divisible by --beam-width 4"),
    (["search", "x", "--strategy", "greedy"], "--strategy 'greedy' is unknown"),
    (["search", "x", "--agg", "max"], "--agg 'max' is unknown"),
    (["search", "x", "--strategy", "best-of-n", "--lookahead", "1"], "--lookahead 1 only applies to beam and dvts"),
    (["search", "x", "--max-steps", "0"], "--max-steps must be an integer >= 1"),
    (["search", "x", "--max-step-tokens", "0"], "--max-step-tokens must be an integer >= 1"),
    (["search", "x", "--batch-problems", "0"], "--batch-problems must be an integer >= 1"),
    (["search", "x", "--max-kv-tokens", "0"], "--max-kv-tokens must be an integer >= 1"),
    (["search", "x", "--prm-protocol", "magic"], "--prm-protocol 'magic' is unknown"),
    (["search", "x", "--prm", "p", "--verifier", "m:f"], "--prm and --verifier both given"),
    (["search", "x", "--verifier", "nosuchmod:f"], "cannot import module 'nosuchmod'"),
    (["search", "x", "--tree", "/no/such/folder/tree.json"], "--tree /no/such/folder/tree.json: the folder /no/such/folder does not exist"),
    (["search", "x", "--temperature", "-0.5"], "--temperature must be a number >= 0"),
    (["search"], "no prompt given"),
    (["search", "x", "--strategy", "best-of-n", "--temperature", "0"], "--temperature 0 is greedy, so the 4 candidates of best-of-n would be identical"),
    (["search", "x", "--max-kv-tokens", "5", "--model", "{tiny}"], "--max-kv-tokens 5 is too small for problem 1"),
    (["search", "x", "--prm", "/no/such/prm", "--model", "{tiny}"], "--prm /no/such/prm: no such file or directory"),
    # eval
    (["eval", "--out", "{d}/o"], "--dataset is missing"),
    (["eval", "--dataset", "synthetic"], "--out is missing"),
    (["eval", "--dataset", "mathh500", "--out", "{d}/o"], "--dataset 'mathh500': unknown dataset"),
    (["eval", "--dataset", "synthetic", "--method", "greedy", "--out", "{d}/o"], "--method 'greedy' is unknown"),
    (["eval", "--dataset", "synthetic", "--budgets", "0", "--out", "{d}/o"], "--budgets value 0 must be an integer >= 1"),
    (["eval", "--dataset", "synthetic", "--budgets", "--out", "{d}/o"], "--budgets is empty"),
    (["eval", "--dataset", "synthetic", "--method", "beam", "--n", "2", "--out", "{d}/o"], "--n 2 is not a multiple of --beam-width 4"),
    (["eval", "--dataset", "synthetic", "--method", "majority", "--temperature", "0", "--out", "{d}/o"], "must be > 0"),
    (["eval", "--dataset", "synthetic", "--limit", "0", "--out", "{d}/o"], "--limit must be an integer >= 1"),
    (["eval", "--dataset", "synthetic", "--classes", "medium", "--out", "{d}/o"], "--classes medium: use short and/or long"),
    (["eval", "--dataset", "{d}/dataset.jsonl", "--out", "{d}/o"], "has no field 'question'"),
    (["eval", "--dataset", "{d}/none.jsonl", "--out", "{d}/o"], "no such file"),
    (["eval", "report", "{d}/no_run"], "does not exist"),
    # trace show
    (["trace", "show", "/no/such/trace.jsonl"], "trace file /no/such/trace.jsonl: no such file"),
    (["trace", "show", "{d}/trace_bad.jsonl"], "record 1: not a ttscale trace record"),
    (["trace", "show", "{d}/trace_text.jsonl"], "trace_text.jsonl, line 1: not valid JSON"),
    (["trace", "show", "{d}/binary.jsonl"], "line 1: not UTF-8 text"),
    (["trace", "show", "x", "--prompt-index", "-1"], "--prompt-index must be >= 0"),
    (["trace"], "the following arguments are required: ACTION"),
    # bench
    (["bench", "kv-cache", "--n", "0"], "--n must be >= 1, got 0"),
    (["bench", "kv-cache", "--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["bench", "budget", "--batch-sizes", "0"], "--batch-sizes must be >= 1, got 0"),
    (["bench", "search", "--problems", "0"], "--problems must be >= 1, got 0"),
    (["bench", "search", "--strategies", "greedy"], "--strategies greedy"),
    (["bench", "prm-memory", "--n", "0"], "--n needs positive candidate counts"),
    (["bench", "nosuch"], "invalid choice: 'nosuch'"),
    (["nosuch"], "invalid choice: 'nosuch'"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_sentence_before_any_model_loads(tmp_path, capsys, argv, message, request):
    d = _files(tmp_path)
    tiny = request.getfixturevalue("tiny_model_dir") if any("{tiny}" in a for a in argv) else None  # refused only once it runs
    argv = [a.format(d=d, tiny=tiny) for a in argv]
    if argv[0] in ("generate", "search", "eval") and argv[:2] != ["eval", "report"] and "--model" not in argv:
        argv += ["--model", NOWHERE]   # a load would fail differently: every check ran before it
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "", out
    if tiny is None:  # nothing ran: the error is all there is
        assert err.startswith("ttscale: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    else:  # the model ran: its status line first, then exactly one error line, last
        last = err.strip().splitlines()[-1]
        assert last.startswith("ttscale: error: ") and err.count("ttscale: error:") == 1, err
    assert "Traceback" not in err and NOWHERE not in err
    assert message.format(d=d, tiny=tiny) in err, err


def test_the_suite_is_large():
    assert len(CASES) >= 60
