"""``ttscale search`` end to end on the real embedded SmolLM2, and its one-sentence refusals."""

import json

import pytest
from conftest import run_cli as run


def test_beam_search_json_and_tree(capsys, tmp_path, smol_dir):
    tree_file = tmp_path / "tree.json"
    code, out, err = run(capsys, "search", "What is 2 + 3?", "--model", smol_dir, "--strategy", "beam", "--n", "4",
                         "--beam-width", "2", "--max-steps", "3", "--max-step-tokens", "12", "--seed", "0",
                         "--json", "--tree", str(tree_file))
    assert code == 0, err
    assert "PRM: the policy model itself under rlhflow" in err and "beam N=4, M=2 (keep 2)" in err
    [r] = [json.loads(line) for line in out.splitlines()]
    for key in ("answer", "completions", "policy_forward_tokens", "tree_tokens", "prm_forward_tokens", "peak_kv_bytes", "wall_s", "votes"):
        assert key in r
    assert r["completions"] and r["prm_forward_tokens"] > 0 and r["peak_kv_bytes"] > 0
    for c in r["completions"]:
        assert {"text", "answer", "step_scores", "score"} <= set(c) and len(c["step_scores"]) == len(c["steps"]) >= 1
        assert c["score"] == c["step_scores"][-1]                               # --agg last
    assert r["policy_forward_tokens"] <= 1.05 * r["tree_tokens"]
    tree = json.loads(tree_file.read_text())
    nodes = tree["nodes"]
    [prob] = tree["problems"]
    assert prob["question"] == "What is 2 + 3?" and prob["root"] == 0 and prob["strategy"] == "beam" and prob["n"] == 4
    assert prob["answer"] == r["answer"] and prob["votes"] == r["votes"] and prob["completions"] == [c["node"] for c in r["completions"]]
    assert prob["chosen"] == next(c["node"] for c in r["completions"] if c["answer"] == r["answer"])
    assert sum(len(n["tokens"]) for n in nodes) == r["tree_tokens"]
    assert sorted(n["id"] for n in nodes if n["status"] == "finished") == sorted(c["node"] for c in r["completions"])
    assert {n["status"] for n in nodes} <= {"root", "kept", "pruned", "duplicate", "finished"}
    assert any(n["status"] == "pruned" for n in nodes) and max(n["depth"] for n in nodes) <= 3


def test_dvts_with_verifier_text_output(capsys, tiny_model_dir):
    code, out, err = run(capsys, "search", "What is 7 * 8?", "--model", tiny_model_dir, "--strategy", "dvts", "--n", "4",
                         "--beam-width", "2", "--max-steps", "2", "--max-step-tokens", "16", "--seed", "1",
                         "--verifier", "engine.search.verifiers:arithmetic")
    assert code == 0, err
    assert "PRM: verifier engine.search.verifiers:arithmetic" in err and "2 subtrees" in err
    assert out.startswith("━━ What is 7 * 8?") and "answer:" in out and "── completion 1/" in out
    assert "PRM forward tokens 0" in out  # a verifier runs no model


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "--n must be an integer >= 1, got 0"),
    (["--n", "6", "--beam-width", "4"], "--n 6 is not divisible by --beam-width 4"),
    (["--strategy", "greedy"], "--strategy 'greedy' is unknown; use one of best-of-n, majority, weighted, beam, dvts"),
    (["--prm-protocol", "skywork"], "--prm-protocol 'skywork' is unknown"),
    (["--verifier", "no_such_module_xyz:check"], "cannot import module 'no_such_module_xyz'"),
    (["--verifier", "engine.search.verifiers:nope"], "has no attribute 'nope'"),
    (["--verifier", "arithmetic"], "must be written module:function"),
    (["--prm", "x/y", "--verifier", "engine.search.verifiers:arithmetic"], "not both"),
    (["--strategy", "best-of-n", "--lookahead", "1"], "only applies to beam and dvts"),
    (["--agg", "max"], "--agg 'max' is unknown"),
    (["--temperature", "-1"], "--temperature must be a number >= 0"),
    (["--tree", "/no/such/folder/t.json"], "does not exist"),
])
def test_refusals_are_one_sentence_before_loading_anything(capsys, argv, message):
    code, _, err = run(capsys, "search", "What is 2 + 3?", "--model", "/no/such/model", *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_prm_tokenizer_without_the_protocols_tokens(capsys, smol_dir):
    code, _, err = run(capsys, "search", "What is 2 + 3?", "--model", smol_dir, "--prm-protocol", "qwen-prm")
    assert code == 2 and "PRM protocol qwen-prm" in err and "'<extra_0>'" in err and "one known token" in err
    assert len(err.strip().splitlines()) == 1


def test_no_prompt(capsys):
    code, _, err = run(capsys, "search")
    assert code == 2 and "no prompt given" in err
