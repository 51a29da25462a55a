"""The grader benchmark (benchmarks/grading/extraction.py): its template builders, s1's rule, and a run on a small corpus."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA

from benchmarks.grading import extraction
from benchmarks.grading.extraction import GRADERS, TEMPLATES, Options, build_cases, math500_answers, run, s1_extract
from engine.answers import answer_region, is_equivalent
from engine.errors import TTScaleError

MATH500 = os.path.join(SHARED_DATA, "math500.jsonl")
# Small but varied: integers, thousands, negatives, decimals, a leading-point decimal, fractions, LaTeX, text, tuples.
SMALL = ["18", "3", "1250", "-12", "2.25", ".35625", "\\frac{14}{3}", "3\\sqrt{13}", "\\text{Evelyn}", "(3, \\frac{\\pi}{2})",
         "x \\in [-2,7]", "\\begin{pmatrix} -7 \\\\ 16 \\\\ 5 \\end{pmatrix}", "10\\%", "\\$32,\\!348"]
# Golds that appear only in the thinking (before the delimiter) of these negatives.
ONLY_IN_THINKING = {"gold-in-thinking", "gold-in-think-tags", "empty-answer", "empty-final-answer"}


@pytest.fixture(scope="module")
def small_cases():
    return build_cases(SMALL, per_template=len(SMALL), seed=0)


def test_every_template_builds_cases(small_cases):
    built = {c.template for c in small_cases}
    assert built == {t.name for t in TEMPLATES}
    assert build_cases(SMALL, per_template=len(SMALL), seed=0) == small_cases          # a fixed seed: the same corpus
    assert len({c.template for c in build_cases(SMALL, 2, seed=1)}) == len(TEMPLATES)


def test_each_positive_contains_its_gold(small_cases):
    for c in (c for c in small_cases if c.positive):
        assert c.committed is not None and c.committed in c.text, c
        assert is_equivalent(c.gold, c.committed), c                                  # "1,250" and "\\dfrac" variants too


def test_each_negative_commits_to_something_else(small_cases):
    for c in (c for c in small_cases if not c.positive):
        region = answer_region(c.text)
        if c.committed is not None:
            assert c.committed in region and not is_equivalent(c.gold, c.committed), c
        if c.template in ONLY_IN_THINKING:
            assert c.gold in c.text and c.gold not in region, c                      # the gold only before the delimiter
        elif c.template != "off-by-one":
            assert c.gold in c.text, c                                               # the gold stands elsewhere in the text


def test_template_builders_refuse_what_they_cannot_build():
    with pytest.raises(TTScaleError, match="per_template must be >= 1"):
        build_cases(SMALL, 0, seed=0)
    with pytest.raises(TTScaleError, match="more than one distinct answer"):
        build_cases(["\\frac{1}{2}"], 1, seed=0)


@pytest.mark.parametrize("text, expected", [
    ("<|im_start|>think\n\\boxed{1}\n<|im_start|>answer\nAnswer: $\\boxed{2}$", "2"),
    ("<|im_start|>answer\nThe answer is 25. She sold 18 eggs in total.", "The answer is 25. She sold 18 eggs in total."),
    ("<|im_start|>answer\nAnswer: 1.\nFinal Answer: 2", "1.\nFinal Answer: 2"),   # DOTALL: one match, from the first label
    ("At first \\boxed{18}.\n</think>\n\nFinal Answer: 25", "18"),                   # </think> is no delimiter to s1
    ("<|im_start|>answer\nso \\boxed 7$ and more", "7"),
    ("<|im_start|>answer\n", ""),
])
def test_s1_rule(text, expected):
    assert s1_extract(text) == expected


def test_run_on_a_small_corpus_meets_the_goal():
    result = run(Options(per_template=len(SMALL)), golds=SMALL)
    assert json.loads(json.dumps(result)) == result
    assert result["benchmark"] == "grading-extraction" and result["config"]["sources"] == {"given": len(SMALL)}
    assert {"python", "math-verify", "sympy"} <= set(result["versions"])
    f = result["figures"]
    assert set(f["templates"]) == {t.name for t in TEMPLATES}
    for name, row in f["templates"].items():
        assert row["kind"] in ("positive", "negative") and row["n"] >= 1
        assert set(row["rate"]) == set(GRADERS) and all(0.0 <= r <= 1.0 for r in row["rate"].values())
        assert row["goal_met"], (name, f["misses"].get(name))
    assert f["goal_met"] and f["goal_missed"] == [] and f["notes"] == {} and f["misses"] == {}
    assert f["summary"]["positive"]["ours"] == 1.0 and f["summary"]["negative"]["ours"] == 0.0
    assert f["summary"]["negative"]["math_verify"] > 0.3          # math-verify alone reads the gold from the thinking


def test_the_command_prints_a_table_then_one_json_line(tmp_path, capsys):
    out = tmp_path / "grading.json"
    assert extraction._cli(["--per-template", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["template", "kind", "n"] and len(lines) > len(TEMPLATES)
    result = json.loads(lines[-1])
    assert result["config"]["per_template"] == 2 and set(result["config"]["sources"]) == {"builtin", "synthetic"}
    assert json.loads(out.read_text()) == result
    assert extraction._cli(["--per-template", "1", "--json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


def test_the_command_refuses_bad_flags(tmp_path, capsys):
    assert extraction._cli(["--per-template", "0"]) == 2
    assert "--per-template must be an integer >= 1, got 0" in capsys.readouterr().err
    assert extraction._cli(["--math500", str(tmp_path / "none.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert extraction._cli(["--out", str(tmp_path / "no" / "such" / "dir.json")]) == 2  # refused before the work
    assert "does not exist; create it or give another path" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x"}\n')
    with pytest.raises(TTScaleError, match="no text 'answer' field"):
        math500_answers(str(bad))


def test_the_benchmark_does_not_import_torch():
    code = "import sys, benchmarks.grading.extraction; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_math500_answers_meet_the_goal():
    if not os.path.isfile(MATH500):
        pytest.skip(f"offline MATH-500 copy not found at {MATH500}")
    golds = math500_answers(MATH500)
    assert len(golds) == 500
    result = run(Options(math500=MATH500, per_template=25), golds=golds[::10] + SMALL)
    assert result["figures"]["goal_met"], result["figures"]["misses"]
