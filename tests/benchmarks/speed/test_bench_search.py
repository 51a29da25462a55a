"""The search benchmark's accounting on the real model (small settings; speed itself is asserted nowhere in tests)."""

import json
import subprocess
import sys

from benchmarks.speed.search import _ratios, run_baseline, run_ours
from benchmarks.speed.search_baseline import kv_bytes_per_token
from engine.logits.sampling import SamplingConfig
from engine.search import SearchConfig


def test_search_benchmark_accounting(smol):
    cfg = SearchConfig("dvts", n=4, beam_width=2, max_steps=2, max_step_tokens=6)
    sampling = SamplingConfig(temperature=0.8, seed=0)
    questions = ["What is 12 * 13?"]
    ours = run_ours(smol.model, smol.tokenizer, cfg, sampling, questions)
    base = run_baseline(smol.model, smol.tokenizer, cfg, sampling, questions)
    for r in (ours, base):
        assert r["completions"] >= 2 and r["generated_tokens"] > 0 and r["prm_forward_tokens"] > 0
        assert 0 < r["prm_s"] < r["wall_s"]
    # the engine runs each tree token at most once; the baseline prefills the prompt once per child and step
    assert ours["policy_forward_tokens"] <= ours["tree_tokens"]
    prompt = ours["tree_tokens"] - ours["generated_tokens"]
    assert base["policy_forward_tokens"] >= 2 * 4 * prompt and base["generate_calls"] == 2
    assert ours["peak_kv_bytes"] % kv_bytes_per_token(smol.model) == 0
    ratios = _ratios(ours, base)
    assert ratios["policy_forward_tokens_baseline_over_ttscale"] > 3 and ratios["prm_forward_tokens_baseline_over_ttscale"] > 1
    json.dumps({"ours": ours, "base": base, **ratios})


def test_bench_search_is_registered():
    out = subprocess.run([sys.executable, "-m", "engine.cli", "bench", "search", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--ns" in out.stdout and "--max-step-tokens" in out.stdout


def test_search_benchmark_envelope(smol):
    from benchmarks.speed.search import bench

    result = bench(smol, strategies=("dvts",), ns=(4,), beam_width=2, problems=1, max_steps=2, max_step_tokens=6,
                   repeats=1, warmup=0)
    assert list(result) == ["benchmark", "config", "versions", "device", "timing", "figures"]
    assert result["benchmark"] == "search" and result["config"]["model"] == smol.name
    assert result["timing"] == {"warmup": 0, "repeats": 1, "order": "interleaved", "statistic": "min"}
    fig = result["figures"]["dvts_n4"]
    for name in ("ttscale", "baseline"):
        r = fig[name]
        assert 0 < r["prm_s"] < r["wall_s"] <= r["wall_median_s"]
        assert abs(r["policy_s"] + r["prm_s"] - r["wall_s"]) < 1e-9  # the phases of the one round reported
    assert fig["wall_baseline_over_ttscale"] == fig["baseline"]["wall_s"] / fig["ttscale"]["wall_s"]
    json.dumps(result)


def test_bench_search_refuses_bad_flags_before_loading(capsys):
    from engine.cli.main import main

    assert main(["bench", "search", "--problems", "0"]) == 2
    assert capsys.readouterr().err.strip() == "ttscale: error: --problems must be >= 1, got 0"
    assert main(["bench", "search", "--repeats", "0"]) == 2
    assert capsys.readouterr().err.strip() == "ttscale: error: --repeats must be >= 1, got 0"
