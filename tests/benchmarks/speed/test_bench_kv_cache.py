"""``ttscale bench kv-cache``: its accounting on the tiny random Llama, its envelope, and its CLI face.

Speed itself is asserted nowhere: only what the token counts and the logits must say.
"""

import json

import pytest
from conftest import make_tiny_model

from benchmarks.speed.kv_cache import bench, make_inputs, run_dynamic, run_tree
from engine.cli.main import main

N, PROMPT, STEPS = 4, 24, 3


@pytest.fixture(scope="module")
def lively():
    """The tiny Llama with larger weights, so that logits differ clearly between tokens (argmax is meaningful)."""
    return make_tiny_model(vocab_size=512, init=0.2)


@pytest.fixture(scope="module")
def result(lively):
    return bench(lively, n=N, prompt_len=PROMPT, steps=STEPS, repeats=2, warmup=1)


def test_tree_stores_the_prompt_once(result, lively):
    fig = result["figures"]
    dyn, tree = fig["dynamic"], fig["tree"]
    bpt = 2 * lively.config.num_hidden_layers * lively.config.num_key_value_heads * (lively.config.hidden_size // 4) * 4
    assert dyn["cached_tokens"] == N * (PROMPT + STEPS) and dyn["kv_bytes"] == dyn["cached_tokens"] * bpt
    assert tree["tree_tokens"] == PROMPT + N * STEPS and tree["kv_bytes"] == tree["tree_tokens"] * bpt
    assert tree["kv_bytes"] < dyn["kv_bytes"] and tree["reserved_bytes"] >= tree["kv_bytes"]
    assert fig["kv_bytes_ratio_predicted"] == N * (PROMPT + STEPS) / (PROMPT + N * STEPS)
    assert fig["kv_bytes_ratio"] == pytest.approx(fig["kv_bytes_ratio_predicted"], rel=1e-9)
    assert tree["forward_tokens"] == PROMPT + N * STEPS  # the tree runs each stored token once, no padding


def test_both_caches_give_the_same_logits(result, lively):
    fig = result["figures"]
    assert fig["max_abs_logit_diff"] < 1e-4
    assert fig["next_token_identical_rows"] == f"{N}/{N}" and fig["prefill_next_token_identical"]
    # every step, not only the last: run each competitor directly for 1..STEPS steps
    prompt, feed = make_inputs(lively, N, PROMPT, STEPS, seed=1)
    for s in range(1, STEPS + 1):
        a, b = run_dynamic(lively, prompt, feed[:, :s]), run_tree(lively, prompt, feed[:, :s])
        assert (a["last_logits"] - b["last_logits"]).abs().max() < 1e-4
        assert a["last_logits"].argmax(-1).tolist() == b["last_logits"].argmax(-1).tolist()


def test_envelope(result):
    assert list(result) == ["benchmark", "config", "versions", "device", "timing", "figures"]
    assert result["benchmark"] == "kv-cache"
    assert result["config"]["n"] == N and result["config"]["prompt_tokens"] == PROMPT and result["config"]["steps"] == STEPS
    assert set(result["versions"]) == {"torch", "transformers", "python"}
    assert result["device"]["type"] == "cpu" and result["device"]["threads"] >= 1 and result["device"]["cpu"]
    assert result["timing"] == {"warmup": 1, "repeats": 2, "order": "interleaved", "statistic": "min"}
    for name in ("dynamic", "tree"):
        r = result["figures"][name]
        for phase in ("prefill", "step", "wall"):
            assert 0 < r[f"{phase}_s"] <= r[f"{phase}_median_s"]
        assert not any(k.endswith("_logits") for k in r)  # tensors stay out of the JSON
    fig = result["figures"]
    assert fig["step_time_ratio_tree_over_dynamic"] == fig["tree"]["step_s"] / fig["dynamic"]["step_s"]
    assert json.loads(json.dumps(result)) == result


def test_bench_refuses_bad_sizes(lively):
    from engine.errors import TTScaleError

    with pytest.raises(TTScaleError, match="--steps must be >= 1, got 0"):
        bench(lively, n=2, prompt_len=4, steps=0)
    with pytest.raises(TTScaleError, match="exceeds the model's 4096 positions"):
        bench(lively, n=2, prompt_len=4096, steps=1)


def test_cli_help_and_bad_flag(capsys):
    assert main(["bench", "kv-cache", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--n" in out and "--prompt" in out and "--steps" in out and "--repeats" in out and "--warmup" in out
    assert main(["bench", "kv-cache", "--n", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ttscale: error: --n must be >= 1, got 0" and len(err.splitlines()) == 1


def test_cli_runs_end_to_end(smol_dir, capsys):
    assert main(["bench", "kv-cache", "--model", smol_dir, "--n", "2", "--prompt", "8", "--steps", "2", "--repeats", "1",
                 "--warmup", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["cache", "prefill", "s", "step", "ms", "KV", "MiB"]  # the table, then the JSON line
    last = json.loads(lines[-1])
    assert last["benchmark"] == "kv-cache" and last["config"]["model"] == smol_dir
    assert last["figures"]["next_token_identical_rows"] == "2/2"
    assert last["figures"]["kv_bytes_ratio"] == pytest.approx(2 * 10 / (8 + 2 * 2))
