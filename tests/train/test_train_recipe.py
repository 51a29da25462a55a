"""s1-mini end to end on the tiny random model: every step's files, the results' shape, skipping on a second run,
and the refusals (bad options, a directory of another run) before anything loads."""

import json
import os

import pytest
from conftest import run_cli

from engine.errors import ConfigError, TTScaleError
from train.recipe import check_run_dir, paths, run_s1_mini, summarise_model
from train.recipe_config import S1MiniOptions


def _options(out, model, **kw):
    small = dict(train_tasks=("synthetic:arith:1", "synthetic:arith:2"), pool_per_task=8, k=6, epochs=1.0,
                 global_batch=2, batch_size=2, eval_problems=3, budgets=(2, 4, 6, 8), num_ignore=(0, 1),
                 ignore_cap=10, max_answer_tokens=3, batch=4, progress=False)
    return S1MiniOptions(out=str(out), model=model, **{**small, **kw})


def test_the_recipe_runs_every_step_and_a_second_run_skips_them(chat_model_dir, tmp_path, one_thread):
    out = tmp_path / "run"
    lines = []
    results = run_s1_mini(_options(out, chat_model_dir), log=lines.append)
    p = paths(str(out))
    for key in ("options", "heldout", "results", "figure", "summary"):
        assert os.path.getsize(p[key]) > 0, key
    assert os.path.isfile(os.path.join(p["curate"], "dataset", "data.parquet")) or os.listdir(os.path.join(p["curate"], "dataset"))
    assert os.path.isfile(os.path.join(p["sft"], "model.safetensors"))
    heldout = [json.loads(line)["question"] for line in open(p["heldout"])]
    assert len(heldout) == 3
    for name in ("base", "sft"):
        model = results["models"][name]
        budgets = [pt["setting"]["max_thinking_tokens"] for pt in model["budget"]["points"]]
        assert budgets == [2, 4, 6, 8] and [pt["setting"]["num_ignore"] for pt in model["wait"]["points"]] == [0, 1]
        assert model["budget"]["control"] == 1.0  # budget forcing never lets thinking pass its cap
        assert all(pt["problems"] == 3 for pt in model["budget"]["points"] + model["wait"]["points"])
        assert model["budget"]["performance"] == max(pt["accuracy"] for pt in model["budget"]["points"])
    assert results["train"]["examples"] == results["curation"]["rows"] <= 6
    assert set(results["wall_s"]) == {"curate", "sft", "eval_base", "eval_sft"}
    summary = open(p["summary"]).read()
    assert "| sft | budget 8 |" in summary and "| base | num_ignore=1 |" in summary
    assert open(p["figure"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # Started again: the curation stages, the training and every evaluation row are reused.
    lines.clear()
    again = run_s1_mini(_options(out, chat_model_dir), log=lines.append)
    assert any("sft: done already" in line for line in lines)
    assert any("(9 already done)" in line or "already done)" in line for line in lines)
    assert again["models"] == results["models"]


def test_a_run_with_other_options_or_a_foreign_directory_is_refused(tmp_path, chat_model_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(TTScaleError, match="not an s1-mini run"):
        check_run_dir(_options(out, chat_model_dir))
    other = tmp_path / "other"
    other.mkdir()
    (other / "recipe.json").write_text(json.dumps(_options(other, chat_model_dir).results_settings()))
    check_run_dir(_options(other, chat_model_dir, progress=True))  # progress decides no result
    with pytest.raises(TTScaleError, match="slip_rate=0.25, not 0.5"):
        check_run_dir(_options(other, chat_model_dir, slip_rate=0.5))


@pytest.mark.parametrize("change, name", [
    ({"out": ""}, "out"), ({"train_tasks": ("synthetic:count:2",)}, "train_tasks"), ({"eval_set": "math500"}, "eval_set"),
    ({"budgets": ()}, "budgets"), ({"budgets": (8, 8)}, "budgets"), ({"num_ignore": (-1,)}, "num_ignore"),
    ({"k": 0}, "k"), ({"slip_rate": 1.5}, "slip_rate"), ({"global_batch": 6, "batch_size": 4}, "global_batch"),
    ({"format": "nope"}, "format"), ({"learning_rate": 0.0}, "learning_rate")])
def test_bad_options_are_refused_naming_the_field(change, name):
    with pytest.raises(ConfigError) as err:
        S1MiniOptions(**{"out": "x", **change})
    assert err.value.field == name


def test_summaries_need_a_budget_sweep():
    with pytest.raises(TTScaleError, match="no budget-sweep rows"):
        summarise_model({"settings": []})


def test_the_cli_refuses_in_one_sentence_before_anything_loads(tmp_path, capsys):
    code, _, err = run_cli(capsys, "recipe", "s1-mini")
    assert code == 2 and err.strip() == "ttscale: error: --out is missing; give the run directory"
    (tmp_path / "mine.txt").write_text("x")
    code, _, err = run_cli(capsys, "recipe", "s1-mini", "--out", str(tmp_path))
    assert code == 2 and "is a non-empty directory that is not an s1-mini run" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "recipe", "s1-mini", "--out", str(tmp_path / "new"), "--train-task", "synthetic:count:2")
    assert code == 2 and "--train-task 'synthetic:count:2' is not a synthetic arithmetic task" in err
    assert not (tmp_path / "new").exists()
