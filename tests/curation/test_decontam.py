"""Decontamination (s1's word 8-gram rule) and dedup (exact, then MinHash near duplicates): what is dropped, why, and
that the first occurrence is the one kept."""

import json
import os
import random

import datasets
import pytest
from conftest import SHARED_DATA

import benchmarks.data.datasets as bench_datasets
from curation.decontam import DecontamConfig, EvalIndex, decontaminate, decontaminate_and_dedup, deduplicate, load_eval_index, words
from curation.schema import Question
from engine.errors import ConfigError, TTScaleError


def _math500_dir():
    for d in (os.environ.get("TTSCALE_DATA"), SHARED_DATA):
        if d and os.path.isfile(os.path.join(d, "math500.jsonl")):
            return d
    pytest.skip("math500.jsonl is not in $TTSCALE_DATA or ../shared/data (a test fixture only)")


# Filler words no MATH-500 problem uses, so a planted n-gram cannot grow into a longer shared run.
FILLER = [f"zq{i}x" for i in range(300)]


def _filler(rng, k):
    return " ".join(rng.choice(FILLER) for _ in range(k))


def _run(stage, questions, *args):
    drops = []
    kept = list(stage(questions, *args, drops.append)) if stage is decontaminate else list(stage(questions, drops.append, *args))
    return kept, drops


@pytest.fixture(scope="module")
def math500(tmp_path_factory):
    d = _math500_dir()
    with open(os.path.join(d, "math500.jsonl"), encoding="utf-8") as fh:
        problems = [json.loads(line)["problem"] for line in fh]
    old = os.environ.get("TTSCALE_DATA")
    os.environ["TTSCALE_DATA"] = d
    try:
        index = load_eval_index(("math500",))
    finally:
        if old is None:
            del os.environ["TTSCALE_DATA"]
        else:
            os.environ["TTSCALE_DATA"] = old
    return problems, index


def test_one_planted_8gram_of_math500_is_enough_and_7_words_are_not(math500):
    problems, index = math500
    rng = random.Random(0)
    planted, seven = [], []
    for text in problems:
        w = words(text)
        if len(w) < 9:
            continue
        i = rng.randrange(len(w) - 7)
        gram = w[i:i + 8]
        # upper case and odd spacing do not hide it: the rule works on normalised text
        planted.append(Question(f"{_filler(rng, 6)}\n{' '.join(gram).upper()}   {_filler(rng, 6)}", source="planted"))
        seven.append(Question(f"{_filler(rng, 6)} {' '.join(gram[:7])} {_filler(rng, 6)}", source="seven"))
    assert len(planted) > 450
    kept, drops = _run(decontaminate, planted, index)
    assert kept == [] and len(drops) == len(planted)
    assert {d.reason for d in drops} == {"contaminated"} and {d.stage for d in drops} == {"decontam"}
    assert all(d.detail.startswith("8-gram '") and d.detail.endswith("' of math500") for d in drops)
    assert drops[0].id == planted[0].id and drops[0].source == "planted"
    kept, drops = _run(decontaminate, seven, index)
    assert drops == [] and kept == seven


def test_the_detail_names_the_set_and_the_gram_and_order_is_kept():
    index = EvalIndex.from_texts({"evalA": ["one two three four five six seven eight nine"], "evalB": ["Short one?"]})
    qs = [Question("clean question"), Question("x ONE two three four five six seven eight y"), Question("short   ONE?"),
          Question("another clean one")]
    kept, drops = _run(decontaminate, qs, index)
    assert [q.question for q in kept] == ["clean question", "another clean one"]
    assert [d.detail for d in drops] == ["8-gram 'one two three four five six seven eight' of evalA",
                                         "the same text as a question of evalB"]


def test_local_jsonl_eval_sets_and_refusals(tmp_path, monkeypatch):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"q": "alpha beta gamma delta epsilon zeta eta theta iota"}) + "\n")
    index = load_eval_index((f"{path}:q",))
    assert index.sizes == {str(path): 1} and index.match("alpha beta gamma delta epsilon zeta eta theta")[0] == str(path)
    with pytest.raises(TTScaleError, match="no question text in field 'problem'"):
        load_eval_index((str(path),))
    with pytest.raises(TTScaleError, match="no such file"):
        load_eval_index((str(tmp_path / "missing.jsonl"),))
    with pytest.raises(TTScaleError, match="not one of math500.*FILE.jsonl"):
        load_eval_index(("math5000",))
    monkeypatch.setattr(bench_datasets, "data_dirs", lambda: [str(tmp_path)])

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(TTScaleError, match=r"^dataset aime25: no local copy .* could not be loaded") as err:
        decontaminate_and_dedup([], DecontamConfig(eval_sets=("aime25",)), print)
    assert "\n" not in str(err.value)


def test_gpqa_is_compared_without_its_options(tmp_path, monkeypatch):
    row = {"Question": "Which particle mediates the strong force between quarks in a proton?", "Correct Answer": "gluon",
           "Incorrect Answer 1": "photon", "Incorrect Answer 2": "W boson", "Incorrect Answer 3": "Z boson", "Record ID": "r1"}
    (tmp_path / "gpqa_diamond.jsonl").write_text(json.dumps(row) + "\n")
    monkeypatch.setattr(bench_datasets, "data_dirs", lambda: [str(tmp_path)])
    index = load_eval_index(("gpqa-diamond",))
    assert index.match("mediates the strong force between quarks in a proton? yes")[0] == "gpqa-diamond"
    assert not any("gluon" in g or "photon" in g for g in index.grams)


# A long question (~120 words): one changed number alters 5 of its ~120 shingles, Jaccard ~0.92, above 0.9.
LONG = ("A bag holds 3 red marbles, 5 blue marbles and 7 green marbles, and a second bag holds 4 red marbles and 6 "
        "yellow marbles. Alice first rolls a fair six-sided die; if the die shows an even number she draws two "
        "marbles from the first bag without replacement, and otherwise she draws two marbles from the second bag "
        "without replacement. Bob, who did not see the die, is then told only the colours of the two marbles that "
        "Alice drew, and he must guess which bag they came from. Suppose Bob always guesses the bag that is more "
        "likely given the colours he is told, breaking ties in favour of the first bag. What is the probability "
        "that Bob guesses correctly? Express your answer as a common fraction in lowest terms, and explain each "
        "step of your reasoning carefully so that a reader can check every case.")


def _dup_pool():
    return [
        Question(LONG, source="first"),
        Question("Compute the sum of all positive divisors of 360.", source="other"),
        Question(LONG.upper().replace(" ", "  "), source="exact-copy"),             # same id: exact duplicate
        Question("Problem: " + LONG, source="near-copy"),                             # one shingle more
        Question(LONG.replace("7 green", "8 green"), source="changed-number"),        # a different problem
        Question("Compute the sum of all positive divisors of 360.", source="other-copy"),
        Question("Problem: " + LONG, source="copy-of-near"),
    ]


def test_exact_and_near_duplicates_dropped_first_kept():
    kept, drops = _run(deduplicate, _dup_pool())
    assert [q.source for q in kept] == ["first", "other", "changed-number"]
    assert [(d.source, d.reason) for d in drops] == [("exact-copy", "duplicate"), ("near-copy", "near_duplicate"),
                                                     ("other-copy", "duplicate"), ("copy-of-near", "duplicate")]
    first, other = kept[0].id, kept[1].id
    assert drops[0].detail == f"same text as kept question {first} (from first)" and drops[0].stage == "dedup"
    assert drops[1].detail.startswith(f"near duplicate of kept question {first} (estimated Jaccard 0.9")
    assert drops[1].detail.endswith("on word 5-shingles)")
    assert drops[2].detail == f"same text as kept question {other} (from other)"
    assert "itself a near duplicate of kept question " + first in drops[3].detail


def test_near_dedup_settings():
    pool = _dup_pool()
    kept, drops = _run(deduplicate, pool, DecontamConfig(near_same_numbers=False))
    assert [q.source for q in kept] == ["first", "other"]  # the changed number is merged without the guard
    assert drops[2].source == "changed-number" and "estimated Jaccard 0.9" in drops[2].detail
    kept, drops = _run(deduplicate, pool, DecontamConfig(near_dedup=False))
    assert [q.source for q in kept] == ["first", "other", "near-copy", "changed-number"]
    assert {d.reason for d in drops} == {"duplicate"}


def test_both_steps_in_order():
    index = EvalIndex.from_texts({"ev": ["Compute the sum of all positive divisors of 360."]})
    drops = []
    kept = list(decontaminate_and_dedup(_dup_pool(), DecontamConfig(), drops.append, index=index))
    assert [q.source for q in kept] == ["first", "changed-number"]
    assert [d.reason for d in drops] == ["contaminated", "duplicate", "near_duplicate", "contaminated", "duplicate"]
    with pytest.raises(TTScaleError, match="holds 8-grams but ngram=5"):
        decontaminate_and_dedup([], DecontamConfig(ngram=5), print, index=index)


@pytest.mark.parametrize("kwargs, field", [({"ngram": 0}, "ngram"), ({"shingle": 1.5}, "shingle"),
                                           ({"num_perm": 8}, "num_perm"), ({"near_threshold": 0}, "near_threshold"),
                                           ({"near_threshold": 1.5}, "near_threshold"), ({"eval_sets": ()}, "eval_sets")])
def test_config_refusals_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        DecontamConfig(**kwargs)
    assert err.value.field == field


def test_similar_questions_with_other_literals_or_answers_are_not_near_duplicates():
    """A short templated question whose last quoted word changed alters one shingle only (its estimated similarity can
    pass 0.9) but asks another question: different quoted literals, or different reference answers, keep both."""
    base = 'How many times does the letter "b" appear in total in the words "puzzle", "bubble", "{}"?'
    long = ("A teacher writes the first ten odd positive integers on the board, one after another in a single row, and "
            "asks the class to add all of them together carefully before the bell rings at the end of the long "
            "afternoon lesson, so what total should the students write down on their small paper slips{}")
    pool = [Question(base.format("lemon"), answer="3"), Question(base.format("rabbit"), answer="5"),
            Question(long.format("."), answer="100"), Question(long.format("!"), answer="100"),
            Question(long.format("?"), answer="99")]
    kept, drops = _run(deduplicate, pool, DecontamConfig())
    assert [q.answer for q in kept] == ["3", "5", "100", "99"]
    assert [d.reason for d in drops] == ["near_duplicate"]  # only the copy with the same text modulo punctuation and answer
