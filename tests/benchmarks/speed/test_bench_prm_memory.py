"""The PRM memory benchmark at a tiny size: its JSON line, equal scores (asserted inside), and held-once savings."""

import argparse
import json

from benchmarks.speed.prm_memory import add_arguments, main


def test_prm_memory_benchmark_json_and_savings(capsys, smol_dir):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert main(parser.parse_args(["--n", "4", "--question-tokens", "24"])) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "prm_memory" and result["config"]["ns"] == [4] and result["config"]["question_tokens"] >= 24
    assert set(result["versions"]) == {"python", "torch", "transformers"} and set(result) >= {"device", "timing"}
    assert set(result["figures"]) == {"n4_stepwise", "n4_one_call"}
    for fig in result["figures"].values():
        old, new = fig["baseline"], fig["ttscale"]
        for side in (old, new):
            assert {"kv_bytes", "cached_tokens", "forward_tokens", "entries"} <= set(side)
        assert old["entries"] == new["entries"]                         # same calls, same entries kept
        assert 0 < new["kv_bytes"] < old["kv_bytes"]                     # shared prefixes held once
        assert new["cached_tokens"] < old["cached_tokens"] and new["forward_tokens"] <= old["forward_tokens"]
        assert new["cached_tokens"] == new["forward_tokens"]             # nothing evicted: every token run is kept, once
        assert fig["bytes_ratio"] > 1


def test_prm_memory_is_registered_and_refuses_bad_flags(capsys):
    from engine.cli.main import main as ttscale

    assert ttscale(["bench", "prm-memory", "--n", "0"]) == 2
    assert "ttscale: error: --n needs positive candidate counts" in capsys.readouterr().err
