"""``ttscale eval``: flags map one-to-one to EvalConfig, bad input is one sentence before any model loads, and
``ttscale eval report DIR`` redraws the report from the rows."""

import json
import os

import pytest

from benchmarks.eval.config import EvalConfig, config_fields
from benchmarks.eval.store import RunStore, new_row
from engine.cli.eval import config_from_args
from engine.cli.flags import EVAL as SPEC
from engine.cli.main import build_parser, main


def error_of(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ttscale: error: ") and "\n" not in err, err
    return err


def test_every_config_field_is_a_flag_and_parses_back():
    parser = build_parser()
    args = parser.parse_args(["eval", "--dataset", "synthetic:arith:2", "--limit", "7", "--method", "budget", "beam",
                              "--budgets", "8", "16", "--force-min", "--n", "4", "8", "--beam-width", "2", "--temperature", "0.5",
                              "--format", "think-tags", "--system", "S", "--model", "m", "--prm", "a:b", "--prm-protocol",
                              "verifier", "--out", "x"])
    config = config_from_args(args)
    assert config == EvalConfig(dataset="synthetic:arith:2", limit=7, methods=("budget", "beam"), budgets=(8, 16),
                                force_min=True, n=(4, 8), beam_width=2, temperature=0.5, format="think-tags", system="S",
                                model="m", prm="a:b", prm_protocol="verifier")
    defaults = config_from_args(parser.parse_args(["eval", "--dataset", "synthetic"]))
    assert defaults == EvalConfig(dataset="synthetic")
    for f in config_fields():
        assert f.name in SPEC.fields and f.metadata.get("help"), f.name   # every field is a flag with its help


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "mathh500"], "--dataset 'mathh500': unknown dataset; use one of math500, aime24"),
    (["--dataset", "synthetic", "--budgets"], "--budgets is empty; give at least one value"),
    (["--dataset", "synthetic", "--method", "majority", "--n"], "--n is empty"),
    (["--dataset", "synthetic", "--method", "greedy"], "--method 'greedy' is unknown"),
    (["--dataset", "synthetic", "--method", "best-of-n", "--prm-protocol", "verifier", "--prm", "nosuchmod:f"],
     "cannot import module 'nosuchmod'"),
    (["--method", "budget"], "--dataset is missing"),
])
def test_bad_input_is_one_sentence(tmp_path, capsys, extra, message):
    err = error_of(["eval", *extra, "--out", str(tmp_path / "out")], capsys)
    assert message in err
    assert not os.path.exists(tmp_path / "out" / "samples.jsonl")


def test_local_file_with_missing_fields(tmp_path, capsys):
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps({"q": "What is 1 + 1?", "a": "2"}) + "\n")
    err = error_of(["eval", "--dataset", str(path), "--out", str(tmp_path / "out")], capsys)
    assert "row 1 has no field 'question'" in err and "--fields question=<field>" in err
    err = error_of(["eval", "--dataset", str(path), "--fields", "question=q", "--out", str(tmp_path / "out")], capsys)
    assert "has no field 'answer'" in err


def test_out_missing(capsys):
    assert "--out is missing" in error_of(["eval", "--dataset", "synthetic"], capsys)


def test_directory_of_another_configuration_is_refused_before_loading(tmp_path, capsys):
    out = str(tmp_path / "run")
    RunStore(out, EvalConfig(dataset="synthetic", limit=3, budgets=(8, 16)).to_dict()).close()
    err = error_of(["eval", "--dataset", "synthetic", "--limit", "3", "--budgets", "8", "32", "--out", out], capsys)
    assert f"--out {out} already holds a run with another configuration" in err
    assert "plan.budget" in err and "use a new output directory" in err


def test_report_redraws_from_rows(tmp_path, capsys):
    out = str(tmp_path / "run")
    config = EvalConfig(dataset="synthetic", methods=("budget", "majority"), budgets=(8, 16), n=(1, 4))
    with RunStore(out, config.to_dict()) as store:
        for i in range(4):
            for b in (8, 16):
                store.append(new_row(f"p{i}", "budget", {"max_thinking_tokens": b}, compute=b - i, correct=i < b // 8,
                                     thinking_tokens=b - i))
            for n in (1, 4):
                store.append(new_row(f"p{i}", "majority", {"n": n}, compute=n, correct=i < n, thinking_tokens=10 * n))
    assert main(["eval", "report", out]) == 0
    printed = capsys.readouterr().out
    assert "| budget | max_thinking_tokens=16 | 4 | 14.5 | 50.0 |" in printed
    assert "| majority | n=4 | 4 | 4 | 100.0 |" in printed
    assert "Definitions" not in printed
    for name in ("metrics.json", "scaling.png", "summary.md"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert "does not exist" in error_of(["eval", "report", str(tmp_path / "nothing")], capsys)
