"""The evaluation runner on a tiny random model: every method writes one graded row per (problem, setting), the four
outputs appear, budget forcing's Control is 100% by construction, pools nest, compute-optimal copies its chosen rows,
and a second run on the same directory does nothing. Plus configuration checks and compute-optimal's binning."""

import dataclasses
import json
import os

import pytest
import torch
from conftest import make_tiny_model

from benchmarks.eval.config import DEFAULT_BUDGETS, DEFAULT_N, METHODS, EvalConfig, method_settings, plan_units
from benchmarks.eval.grading import Grader
from benchmarks.eval.methods import Context, derive_rows, difficulty_levels
from benchmarks.eval.runner import run_eval
from benchmarks.eval.store import RunStore, new_row, read_samples, row_key
from engine.errors import TTScaleError

ALL = dict(dataset="synthetic", limit=3, methods=METHODS, budgets=(4, 8), num_ignore=(1,), ignore_cap=6, steps=(1, 2),
           n=(2, 4), beam_width=2, max_steps=2, max_step_tokens=3, max_answer_tokens=3, max_new_tokens=12,
           parallel_max_thinking=4, prm="benchmarks.data.synthetic:check_steps", prm_protocol="verifier", pilot_n=2,
           batch_size=2, search_batch=2, max_tries=2, format="think-tags", model="tiny-random")


@pytest.fixture(scope="module")
def lively():
    return make_tiny_model(init=0.2)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, lively, tokenizer):
    out = str(tmp_path_factory.mktemp("eval") / "all")
    config = EvalConfig(**ALL)
    result = run_eval(config, out, model=lively, tokenizer=tokenizer, progress=False, log=lambda m: None)
    return config, out, result, read_samples(out)


PROBLEMS = ("arith1-0", "arith1-1", "arith1-2")


def by_key(rows):
    return {row_key(r["problem_id"], r["method"], r["setting"]): r for r in rows}


def rows_of(config, rows, method):
    """The rows of ``method``, after checking it has one per problem and setting (so a loop over them checks something)."""
    mine = [r for r in rows if r["method"] == method]
    assert len(mine) == len(PROBLEMS) * len(method_settings(config, method)) > 0, method
    return mine


# ─── the whole run ─────────────────────────────────────────────────────────────────────────────────────────────


def test_every_method_and_setting_has_exactly_one_row_per_problem(full_run):
    config, out, result, rows = full_run
    expected = {(p, m, json.dumps(s, sort_keys=True)) for m in config.methods for s in method_settings(config, m)
                for p in PROBLEMS}
    got = [(r["problem_id"], r["method"], json.dumps(r["setting"], sort_keys=True)) for r in rows]
    assert len(got) == len(set(got)) == len(expected) == 3 * 23
    assert set(got) == expected
    assert result.rows_written == len(rows)
    for name in ("samples.jsonl", "metrics.json", "scaling.png", "summary.md", "config.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert not [f for f in os.listdir(out) if f.startswith("samples.rank")]
    for r in rows:
        assert r["gold"] and r["prompt"] and isinstance(r["thinking_tokens"], int) and r["wall_s"] >= 0
        assert r["correct"] == (r["extracted"] is not None and float(r["extracted"]) == float(r["gold"]))


def test_budget_rows_respect_their_budget_and_control_is_100_percent(full_run):
    config, out, _, rows = full_run
    budget = rows_of(config, rows, "budget")
    assert {json.dumps(r["setting"], sort_keys=True) for r in budget} == {
        '{"max_thinking_tokens": 4}', '{"max_thinking_tokens": 8}', '{"max_thinking_tokens": 6, "num_ignore": 1}'}
    for r in budget:
        cap = r["setting"]["max_thinking_tokens"]
        assert r["compute"] == r["thinking_tokens"] <= cap
        assert r["extra"]["waits_injected"] >= r["setting"].get("num_ignore", 0) or r["extra"]["forced_stop"]
    with open(os.path.join(out, "metrics.json")) as fh:
        metrics = json.load(fh)
    assert metrics["methods"]["budget"]["control"] == 1.0
    assert set(metrics["methods"]) == set(METHODS)
    with open(os.path.join(out, "summary.md")) as fh:
        summary = fh.read()
    assert "| budget | sequential | 3 | 100% |" in summary


def test_baseline_prompts_and_countdown(full_run):
    config, _, _, rows = full_run
    for r in rows_of(config, rows, "token-conditional"):
        assert f"Think for up to {r['setting']['max_thinking_tokens']} tokens.<|im_end|>" in r["prompt"]
    for r in rows_of(config, rows, "step-conditional"):
        steps = r["setting"]["steps"]
        assert f"Think for up to {steps} steps.<|im_end|>" in r["prompt"]
        assert r["generation"].startswith(f"<|im_start|>{steps} steps left\n")
        assert r["extra"]["countdown_lines"] >= 1
    classes = rows_of(config, rows, "class-conditional")
    assert {r["setting"]["class"] for r in classes} == {"short", "long"}
    for r in classes:
        assert f"{r['setting']['class']} amount of thinking" in r["prompt"]
    for r in rows_of(config, rows, "rejection"):
        ok = r["thinking_tokens"] <= r["setting"]["max_thinking_tokens"] and not r["extra"]["forced_stop"]
        assert r["extra"]["accepted"] == ok and 1 <= r["extra"]["tries"] <= 2


def test_pool_is_shared_and_nested(full_run):
    _, _, _, rows = full_run
    k = by_key(rows)
    for p in PROBLEMS:
        big = k[row_key(p, "best-of-n", {"n": 4})]["extra"]
        small = k[row_key(p, "best-of-n", {"n": 2})]["extra"]
        assert big["samples"] == 4 and small["answers"] == big["answers"][:2] and small["scores"] == big["scores"][:2]
        for m in ("majority", "weighted"):  # the three rules read the same samples
            assert k[row_key(p, m, {"n": 4})]["extra"]["answers"] == big["answers"]
        assert k[row_key(p, "majority", {"n": 4})]["compute"] == 4


def test_compute_optimal_rows_copy_the_chosen_strategy(full_run):
    config, _, _, rows = full_run
    optimal = rows_of(config, rows, "compute-optimal")
    assert {(r["problem_id"], r["setting"]["n"]) for r in optimal} == {(p, n) for p in PROBLEMS for n in (2, 4)}
    for r in optimal:
        e = r["extra"]
        src = [x for x in rows if x["method"] == e["strategy"] and x["setting"]["n"] == r["setting"]["n"]
               and x["problem_id"] == r["problem_id"]]
        assert len(src) == 1 and src[0]["generation"] == r["generation"] and src[0]["correct"] == r["correct"]
        assert e["level_accuracy"][e["strategy"]] == max(e["level_accuracy"].values())


def test_second_run_on_the_same_directory_does_nothing(full_run, lively, tokenizer):
    config, out, _, rows = full_run
    with open(os.path.join(out, "samples.jsonl"), "rb") as fh:
        before = fh.read()
    again = run_eval(config, out, model=lively, tokenizer=tokenizer, progress=False, log=lambda m: None)
    assert (again.rows_written, again.units_run) == (0, 0)
    with open(os.path.join(out, "samples.jsonl"), "rb") as fh:
        assert fh.read() == before


# ─── configuration ─────────────────────────────────────────────────────────────────────────────────────────────


def test_method_settings_and_defaults():
    c = EvalConfig(dataset="synthetic", methods=("budget", "majority", "beam"), n=(16, 4))
    assert method_settings(c, "budget") == [{"max_thinking_tokens": b} for b in DEFAULT_BUDGETS]
    assert method_settings(c, "majority") == [{"n": 4}, {"n": 16}]
    assert method_settings(c, "beam") == [{"n": 4, "m": 4}, {"n": 16, "m": 4}]
    forced = EvalConfig(dataset="synthetic", budgets=(8,), force_min=True, num_ignore=(0, 2), ignore_cap=32)
    assert method_settings(forced, "budget") == [{"max_thinking_tokens": 8, "min_thinking_tokens": 8},
                                                 {"num_ignore": 0, "max_thinking_tokens": 32},
                                                 {"num_ignore": 2, "max_thinking_tokens": 32}]
    only_ignores = EvalConfig(dataset="synthetic", num_ignore=(1,), methods=("budget", "token-conditional"))
    assert method_settings(only_ignores, "budget") == [{"num_ignore": 1}]
    assert method_settings(only_ignores, "token-conditional") == [{"max_thinking_tokens": b} for b in DEFAULT_BUDGETS]
    assert EvalConfig(dataset="synthetic").ns == DEFAULT_N


def test_fingerprint_holds_the_plan_not_the_spelling():
    a = EvalConfig(dataset="synthetic", methods=("budget",)).to_dict()
    b = EvalConfig(dataset="synthetic", methods=("budget",), budgets=DEFAULT_BUDGETS).to_dict()
    c = EvalConfig(dataset="synthetic", methods=("budget",), budgets=DEFAULT_BUDGETS, num_ignore=(1,)).to_dict()
    assert a == b and a != c
    assert not {"out", "out_dir", "world", "processes", "device"} & set(a)


def test_units_are_fixed_batches_with_stable_distinct_seeds():
    from benchmarks.data.datasets import load_dataset_rows

    c = EvalConfig(dataset="synthetic", methods=("budget", "majority", "weighted", "dvts"), budgets=(4, 8), n=(4, 8),
                   batch_size=3, search_batch=2)
    problems = load_dataset_rows("synthetic", limit=5)
    units = plan_units(c, problems)
    kinds = [u.kind for u in units]
    assert kinds.count("budget") == 2 * 2 and kinds.count("dvts") == 2 * 3 and kinds.count("pool") == 3
    pool = next(u for u in units if u.kind == "pool")
    assert {m for m, _ in pool.outputs} == {"majority", "weighted"} and len(pool.keys()) == 2 * 2 * 2
    dvts = next(u for u in units if u.kind == "dvts")
    assert (units[0].cost(), dvts.cost(), pool.cost()) == (3, 2 * 4, 2 * 8)  # progress counts generations
    seeds = [u.seed(0) for u in units]
    assert len(set(seeds)) == len(seeds) and seeds == [u.seed(0) for u in plan_units(c, problems)]
    assert units[0].seed(1) != units[0].seed(0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dataset=""), "dataset is missing"),
    (dict(methods=("budget", "beamsearch")), "methods 'beamsearch' is unknown"),
    (dict(methods=()), "methods is empty"),
    (dict(budgets=()), "budgets is empty"),
    (dict(budgets=(0, 8)), "budgets value 0 must be an integer >= 1"),
    (dict(methods=("beam",), n=(1, 4)), "n 1 is not a multiple of beam_width 4"),
    (dict(methods=("compute-optimal", "majority")), "add best-of-n or weighted"),
    (dict(methods=("compute-optimal", "weighted"), n=(2,), pilot_n=4), "pilot_n 4 is larger than the largest n 2"),
    (dict(methods=("majority",), temperature=0.0), "must be > 0"),
    (dict(classes=("medium",)), "use short and/or long"),
])
def test_config_refusals_are_one_sentence(kwargs, message):
    with pytest.raises(TTScaleError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        EvalConfig(**{"dataset": "synthetic", **kwargs})
    assert "\n" not in str(err.value) and "--" not in str(err.value)  # the library names fields, not flags


# ─── compute-optimal from handmade rows ────────────────────────────────────────────────────────────────────────


def test_difficulty_levels_are_quintiles_easiest_first():
    scores = {f"p{i}": i / 10 for i in range(10)}
    levels = difficulty_levels(scores)
    assert [levels[f"p{i}"] for i in range(9, -1, -1)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert difficulty_levels({"a": 0.5, "b": 0.1}) == {"a": 1, "b": 2}
    with pytest.raises(TTScaleError, match="no problems"):
        difficulty_levels({})


def test_derive_rows_picks_the_best_strategy_per_level(tmp_path):
    """Easy problems (high pilot scores): best-of-n is right; hard ones: beam is. Each level gets its winner."""
    config = EvalConfig(dataset="synthetic", methods=("best-of-n", "beam", "compute-optimal"), n=(4,), pilot_n=2)
    out = str(tmp_path / "co")
    store = RunStore(out, config.to_dict())
    for i in range(10):
        easy = i >= 6  # levels 1-2 (p6-p9) easy, levels 3-5 hard
        store.append(new_row(f"p{i}", "best-of-n", {"n": 4}, 4, correct=easy, generation="bon",
                             extra={"scores": [i / 10, i / 10, 0.0, 0.0]}))
        store.append(new_row(f"p{i}", "beam", {"n": 4, "m": 4}, 4, correct=not easy, generation="beam"))
    assert derive_rows(config, store) == 10
    store.merge()
    co = {r["problem_id"]: r for r in read_samples(out) if r["method"] == "compute-optimal"}
    assert all(r["correct"] for r in co.values())
    assert {co[f"p{i}"]["extra"]["strategy"] for i in range(6, 10)} == {"best-of-n"}
    assert {co[f"p{i}"]["extra"]["strategy"] for i in range(6)} == {"beam"}
    assert co["p9"]["extra"]["level"] == 1 and co["p0"]["extra"]["level"] == 5
    assert derive_rows(config, RunStore(out, config.to_dict())) == 0  # already there: nothing twice


def test_grading_by_kind(tokenizer):
    """Synthetic by number (a restated question is not an answer), choice by letter, math with math-verify."""
    from benchmarks.data.datasets import Problem

    ctx = Context(config=EvalConfig(dataset="synthetic"), model=None, tokenizer=tokenizer, engine=None, end_ids=(2,),
                  grader=Grader.for_run("synthetic"))
    assert ctx.grader == Grader(synthetic=True, delimiters=("<|im_start|>answer", "</think>"))
    arith = Problem("a", "What is 2 + 6?", "8")
    assert ctx.extract(arith, "think</think>\nFinal Answer: 2 + 6") == "6"
    assert not ctx.is_correct(arith, "6") and ctx.is_correct(arith, "8.0")
    # An empty answer after thinking is no answer, even when the thinking holds the result: only the answer is graded.
    assert ctx.extract(arith, "So 2 + 6 is 8.</think>") is None
    assert ctx.extract(arith, "So 2 + 6 is 8.") == "8"  # no delimiter at all: the reply's last number (the calibration's rule)
    assert ctx.extract(arith, "8</think>\n\nFinal Answer: \\boxed{7}") == "7" and ctx.extract(arith, "no number") is None
    ctx.grader = dataclasses.replace(ctx.grader, synthetic=False)
    assert ctx.is_correct(Problem("m", "x?", "\\frac{1}{2}"), "0.5")
    choice = Problem("g", "Which?", "B", "choice", ("x", "y", "z", "w"))
    assert ctx.extract(choice, "hmm</think>\nThe answer is (B).") == "B" and ctx.is_correct(choice, "B")


def test_real_model_smoke(smol, tmp_path):
    """The embedded model, two problems, one budget: rows are graded from real text (a sanity check, not a score)."""
    torch.manual_seed(0)
    config = EvalConfig(dataset="synthetic", limit=2, methods=("budget",), budgets=(8,), max_answer_tokens=12,
                        format="think-tags", system="Think step by step before answering.")
    out = str(tmp_path / "real")
    run_eval(config, out, model=smol.model, tokenizer=smol.tokenizer, progress=False, log=lambda m: None)
    rows = read_samples(out)
    assert len(rows) == 2 and all(r["thinking_tokens"] <= 8 for r in rows)
    assert all("</think>" in r["generation"] for r in rows)
