"""``ttscale eval report DIR --regrade``: a run whose rows were graded by another grader is graded again from its
stored generations — sequential rows from their text, parallel rows re-voted over every stored sample — and ends equal
to a fresh run; what changed is listed; what cannot be regraded is counted and kept."""

import copy
import json
import os
import shutil

import pytest
from conftest import make_tiny_model

from benchmarks.eval.config import METHODS, EvalConfig
from benchmarks.eval.regrade import regrade
from benchmarks.eval.runner import run_eval
from benchmarks.eval.store import SAMPLES, canonical_json, read_samples, row_key
from engine.cli.main import main
from engine.errors import TTScaleError

CONFIG = dict(dataset="synthetic", limit=3, methods=METHODS, budgets=(4, 8), num_ignore=(1,), ignore_cap=6, steps=(1, 2),
              n=(2, 4), beam_width=2, max_steps=2, max_step_tokens=3, max_answer_tokens=3, max_new_tokens=12,
              parallel_max_thinking=4, prm="benchmarks.data.synthetic:check_steps", prm_protocol="verifier", pilot_n=2,
              batch_size=2, search_batch=2, max_tries=2, format="think-tags", model="tiny-random")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, tokenizer):
    out = str(tmp_path_factory.mktemp("regrade") / "fresh")
    run_eval(EvalConfig(**CONFIG), out, model=make_tiny_model(init=0.2), tokenizer=tokenizer, progress=False, log=lambda m: None)
    return out


def _keyed(rows):
    return {row_key(r["problem_id"], r["method"], r["setting"]): r for r in rows}


def _copy(fresh, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(fresh, out)
    return out


def _rewrite(out, rows):
    with open(os.path.join(out, SAMPLES), "w", encoding="utf-8") as fh:
        fh.writelines(canonical_json(r) + "\n" for r in rows)


def test_a_run_graded_by_another_grader_ends_equal_to_a_fresh_run(fresh, tmp_path):
    out = _copy(fresh, tmp_path)
    rows = read_samples(out)
    # An "old grader" that read the wrong answers: flip every row's extracted answer and grade, and the votes.
    old = copy.deepcopy(rows)
    for r in old:
        r["extracted"], r["correct"] = "999", not r["correct"]
        if "answers" in (r.get("extra") or {}):
            r["extra"]["answers"] = ["999"] * len(r["extra"]["answers"])
    _rewrite(out, old)
    done = regrade(out)
    assert (done.rows, done.regraded, done.kept) == (len(rows), len(rows), 0)
    again = _keyed(read_samples(out))
    for key, r in _keyed(rows).items():
        got = again[key]
        assert (got["extracted"], got["correct"]) == (r["extracted"], r["correct"]), key
        assert got["generation"] == r["generation"] and got.get("extra", {}).get("answers") == r.get("extra", {}).get("answers"), key
    assert len(done.changed) == len(rows)  # every row's grade was flipped, so every row changed back
    with open(done.paths["regrade"], encoding="utf-8") as fh:
        listed = json.load(fh)
    assert listed["changed"] == len(rows) and listed["changes"][0]["before"]["extracted"] == "999"
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as fh, open(os.path.join(fresh, "metrics.json"), encoding="utf-8") as gh:
        assert json.load(fh) == json.load(gh)  # the report is the fresh run's again


def test_regrading_an_up_to_date_run_changes_nothing(fresh, tmp_path):
    out = _copy(fresh, tmp_path)
    done = regrade(out)
    assert done.changed == [] and done.regraded == done.rows
    assert _keyed(read_samples(out)) == _keyed(read_samples(fresh))


def test_parallel_rows_without_sample_texts_are_kept_and_counted(fresh, tmp_path):
    out = _copy(fresh, tmp_path)
    rows = read_samples(out)
    for r in rows:
        (r.get("extra") or {}).pop("texts", None)
    _rewrite(out, rows)
    done = regrade(out)
    parallel = [r for r in rows if r["scaling"] == "parallel" and r["method"] != "compute-optimal"]
    assert done.kept == len(parallel) > 0 and done.changed == []


def test_refusals(fresh, tmp_path, capsys):
    with pytest.raises(TTScaleError, match="no config.json, so it is not an evaluation run directory"):
        regrade(str(tmp_path))
    out = _copy(fresh, tmp_path)
    shutil.copy(os.path.join(out, SAMPLES), os.path.join(out, "samples.rank1.jsonl"))
    with pytest.raises(TTScaleError, match="unmerged per-process shards"):
        regrade(out)
    assert main(["eval", "report", str(tmp_path / "nothing"), "--regrade"]) == 2
    assert "not an evaluation run directory" in capsys.readouterr().err


def test_the_cli_lists_the_changes(fresh, tmp_path, capsys):
    out = _copy(fresh, tmp_path)
    rows = read_samples(out)
    budget = next(r for r in rows if r["method"] == "budget")
    budget["extracted"], budget["correct"] = "12345", not budget["correct"]
    _rewrite(out, rows)
    assert main(["eval", "report", out, "--regrade"]) == 0
    err = capsys.readouterr().err
    assert f"regraded {len(rows)} of {len(rows)} rows: 1 changed" in err
    assert f"{budget['problem_id']} budget" in err and "'12345'" in err
