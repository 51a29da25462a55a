"""The budget benchmark's accounting on the real model (small settings; speed itself is not asserted here)."""

import json

from benchmarks.speed.budget import bench


def test_budget_benchmark_accounting():
    result = bench(batch_sizes=(2,), num_ignore=2, max_thinking_tokens=24, max_answer_tokens=4, repeats=1, warmup=0)
    fig = result["figures"]["batch2"]
    assert fig["ttscale"]["reprefill_tokens"] == 0 and fig["ttscale"]["generate_calls"] == 1
    assert fig["reference"]["reprefill_tokens"] > 0 and fig["reference"]["generate_calls"] >= 2
    assert fig["plain"]["steps"] == fig["ttscale"]["steps"]
    assert fig["plain"]["forward_tokens"] == fig["ttscale"]["forward_tokens"]
    assert fig["reference"]["forward_tokens"] > fig["ttscale"]["forward_tokens"]
    # Greedy: one generate call with in-place injections follows s1's multi-call loop token for token.
    assert fig["greedy_thinking_identical_rows"] == "2/2"
    assert list(result) == ["benchmark", "config", "versions", "device", "timing", "figures"]
    assert result["benchmark"] == "budget" and result["config"]["model"] == "smollm2-135m"
    assert result["timing"] == {"warmup": 0, "repeats": 1, "order": "interleaved", "statistic": "min"}
    for name in ("plain", "ttscale", "reference"):
        assert 0 < fig[name]["wall_s"] <= fig[name]["wall_median_s"] and "texts" not in fig[name]
    assert fig["throughput_vs_plain"] == fig["plain"]["wall_s"] / fig["ttscale"]["wall_s"]
    json.dumps(result)


def test_bench_budget_refuses_bad_flags_before_loading(capsys):
    from engine.cli.main import main

    assert main(["bench", "budget", "--batch-sizes", "2", "0"]) == 2
    assert capsys.readouterr().err.strip() == "ttscale: error: --batch-sizes must be >= 1, got 0"
