"""Benchmark loading: offline copies, local JSONL with field maps, GPQA-style choices, synthetic tasks and checkers."""

import json
import os

import pytest
from conftest import SHARED_DATA

from benchmarks.data.datasets import Problem, data_dirs, load_dataset_rows, parse_field_map, shuffled_choices
from benchmarks.data.synthetic import check_steps, load_synthetic, read_answer, solution_steps
from engine.errors import TTScaleError

SHARED = SHARED_DATA
needs_shared = pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED, "math500.jsonl")),
                                  reason="the offline copies in ../shared/data are not on this machine")


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return str(path)


def one_sentence(exc):
    msg = str(exc.value)
    assert "\n" not in msg and msg.count(". ") == 0, msg
    return msg


@needs_shared
def test_math500_and_aime24_read_the_offline_copies(monkeypatch):
    monkeypatch.delenv("TTSCALE_DATA", raising=False)
    with open(os.path.join(SHARED, "math500.jsonl")) as fh:
        first = json.loads(fh.readline())
    probs = load_dataset_rows("math500", limit=3)
    assert len(probs) == 3
    assert probs[0] == Problem(first["unique_id"], first["problem"], first["answer"])
    assert probs[0].meta["level"] == first["level"] and "solution" in probs[0].meta
    assert len(load_dataset_rows("math500")) == 500
    aime = load_dataset_rows("aime24")
    assert len(aime) == 30 and all(p.kind == "math" and p.answer.isdigit() for p in aime)
    assert len({p.id for p in aime}) == 30


def test_ttscale_data_comes_first(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "math500.jsonl", [{"problem": "1+1?", "answer": "2", "unique_id": "a/1"}])
    monkeypatch.setenv("TTSCALE_DATA", str(tmp_path))
    assert data_dirs()[0] == str(tmp_path)
    assert load_dataset_rows("math500") == [Problem("a/1", "1+1?", "2")]


def test_named_dataset_without_copy_or_hub_fails_in_one_sentence(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'yentinglin/aime_2025' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("TTSCALE_DATA", str(tmp_path))
    with pytest.raises(TTScaleError) as exc:
        load_dataset_rows("aime25")
    msg = one_sentence(exc)
    assert "yentinglin/aime_2025" in msg and "aime25.jsonl" in msg and "$TTSCALE_DATA" in msg
    with pytest.raises(TTScaleError) as exc:
        load_dataset_rows("gpqa-diamond")
    assert "gated" in one_sentence(exc)


def gpqa_rows(k):
    return [{"Record ID": f"rec{i}", "Question": f"Which is true {i}?", "Correct Answer": f"right {i}",
             "Incorrect Answer 1": f"wrong {i}a", "Incorrect Answer 2": f"wrong {i}b", "Incorrect Answer 3": f"wrong {i}c",
             "Subdomain": "Physics"} for i in range(k)]


def test_gpqa_choices_are_shuffled_by_seed_and_formatted_like_s1(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "gpqa_diamond.jsonl", gpqa_rows(12))
    monkeypatch.setenv("TTSCALE_DATA", str(tmp_path))
    probs = load_dataset_rows("gpqa-diamond")
    for i, p in enumerate(probs):
        assert p.kind == "choice" and len(p.choices) == 4
        assert p.choices["ABCD".index(p.answer)] == f"right {i}"
        lines = p.question.split("\n")
        assert lines[0] == f"Which is true {i}?" and lines[1] == ""
        assert lines[2:] == [f"{L}) {c}" for L, c in zip("ABCD", p.choices)]
    assert len({p.answer for p in probs}) > 1  # not always the same letter
    assert load_dataset_rows("gpqa-diamond") == probs  # fixed by the seed
    assert load_dataset_rows("gpqa-diamond", limit=2) == probs[:2]  # limit does not reshuffle
    other = load_dataset_rows("gpqa-diamond", seed=1)
    assert [p.choices for p in other] != [p.choices for p in probs]
    assert shuffled_choices("r", ["a", "b", "c"], 0, "k") == shuffled_choices("r", ["a", "b", "c"], 0, "k")


def test_local_jsonl_with_field_map(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"uid": "x", "problem": "2+3?", "sol": "5", "src": "me"},
                                                 {"uid": "y", "problem": "2*3?", "sol": 6, "src": "me"}])
    probs = load_dataset_rows(path, field_map="question=problem,answer=sol,id=uid")
    os.rename(path, tmp_path / "synthetic_mine.jsonl")  # a file whose name starts like a generated set is still a file
    assert load_dataset_rows(str(tmp_path / "synthetic_mine.jsonl"), field_map={"answer": "sol", "id": "uid"}) == probs
    assert probs == [Problem("x", "2+3?", "5"), Problem("y", "2*3?", "6")]
    assert probs[0].meta == {"src": "me"}
    assert parse_field_map({"question": "q"}) == {"question": "q"}


def test_local_jsonl_missing_field_names_it_and_the_fields_present(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"problem": "2+3?", "solution": "5"}])
    with pytest.raises(TTScaleError) as exc:
        load_dataset_rows(path)
    msg = one_sentence(exc)
    assert "no field 'answer'" in msg and "problem, solution" in msg and "--fields answer=" in msg
    with pytest.raises(TTScaleError, match="unknown target 'prompt'"):
        load_dataset_rows(path, field_map="prompt=problem")


def test_local_choices_accept_letter_index_or_text(tmp_path):
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"id": 1, "question": "Pick b", "choices": ["a", "b", "c"], "answer": "b"},
        {"id": 2, "question": "Pick c", "choices": ["a", "b", "c"], "answer": 2},
        {"id": 3, "question": "Pick a", "choices": ["a", "b", "c"], "answer": "A"}])
    assert [p.answer for p in load_dataset_rows(path)] == ["B", "C", "A"]
    assert load_dataset_rows(path)[0].question == "Pick b\n\nA) a\nB) b\nC) c"


def test_refusals_are_single_sentences(tmp_path):
    for call, needle in [(lambda: load_dataset_rows("mmlu"), "unknown dataset"),
                         (lambda: load_dataset_rows(str(tmp_path / "none.jsonl")), "no such file"),
                         (lambda: load_dataset_rows("math500", field_map="question=q"), "local .jsonl files only"),
                         (lambda: load_dataset_rows("math500", limit=0), "positive integer")]:
        with pytest.raises(TTScaleError) as exc:
            call()
        assert needle in one_sentence(exc)
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": 1, "question": "a", "answer": "1"}, {"id": 1, "question": "b", "answer": "2"}])
    with pytest.raises(TTScaleError, match="occurs more than once"):
        load_dataset_rows(dup)


# synthetic ---------------------------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_exact():
    a = load_dataset_rows("synthetic:arith:3", limit=20, seed=5)
    assert a == load_dataset_rows("synthetic:arith:3", limit=20, seed=5)
    assert a[:5] == load_dataset_rows("synthetic:arith:3", limit=5, seed=5)
    assert a != load_dataset_rows("synthetic:arith:3", limit=20, seed=6)
    for p in a:
        values = p.meta["values"]
        assert len(values) == 4 and p.answer == str(values[-1]) and p.meta["task"] == "arith"
    c = load_dataset_rows("synthetic:count:2", limit=10)
    for p in c:
        words, letter = p.meta["words"], p.meta["letter"]
        assert len(words) == 2 and p.answer == str(sum(w.count(letter) for w in words))
    assert len(load_synthetic("synthetic")) == 100


def test_synthetic_names_are_checked():
    for bad in ("synthetic:sort", "synthetic:arith:0", "synthetic:arith:x", "synthetic:count:2:1"):
        with pytest.raises(TTScaleError):
            load_dataset_rows(bad)


def test_reference_solutions_score_one_at_every_step():
    for name in ("synthetic:arith:1", "synthetic:arith:4", "synthetic:count:1", "synthetic:count:3"):
        for p in load_dataset_rows(name, limit=10, seed=3):
            steps = solution_steps(p.question)
            assert check_steps(p.question, steps) == [1.0] * len(steps), (p.question, steps)
            assert p.answer in steps[-1]


def test_arith_checker_flags_the_wrong_step_and_what_follows():
    q = "What is ((7 + 5) * 3) - 4?"  # 7 → 12 → 36 → 32
    good = ["7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "Answer: 32"]
    assert check_steps(q, good) == [1.0, 1.0, 1.0, 1.0]
    bad = ["7 + 5 = 13", "13 * 3 = 39", "39 - 4 = 35", "Answer: 35"]
    assert check_steps(q, bad) == [0.0, 0.0, 0.0, 0.0]
    slip = ["Let me work it out.", "7 + 5 = 12", "12 * 3 = 38", "Now subtract.", "36 - 4 = 32", "The answer is 32."]
    # nothing to check yet: 0.5; prose inherits the previous score; a false equation is wrong; recovering is right again
    assert check_steps(q, slip) == [0.5, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert check_steps(q, ["This is a classic arithmetic operation.", "It has a long history."]) == [0.5, 0.5]
    assert check_steps(q, ["7 + 5 = 12, then 12 × 3 = 36, then 36 − 4 = 32. \\boxed{32}"]) == [1.0]
    assert check_steps(q, ["Adding 5 gives 12.", "Tripling gives 36.", "The final number is 33."]) == [1.0, 1.0, 0.0]
    assert check_steps(q, []) == []


def test_count_checker_checks_word_counts_sums_and_answer():
    q = 'How many times does the letter "r" appear in total in the words "strawberry", "carrot"?'
    assert check_steps(q, ['"strawberry" has 3 r\'s.', 'carrot has 2.', '3 + 2 = 5', 'Answer: 5']) == [1.0] * 4
    assert check_steps(q, ["strawberry has 2 r's.", "carrot has 2.", "2 + 2 = 4", "Answer: 4"]) == [0.0, 1.0, 0.0, 0.0]


def test_checker_refuses_a_foreign_question():
    with pytest.raises(TTScaleError, match="not a synthetic"):
        check_steps("What is the capital of France?", ["Paris"])


def test_checker_reads_common_model_phrasings():
    q = "What is (6 + 8) * 2?"  # 6 → 14 → 28
    assert check_steps(q, ["1. 6 + 8 = 14", "2. 14 x 2 = 28", "So the answer is 28."]) == [1.0, 1.0, 1.0]
    assert check_steps(q, ["What is (6 + 8) * 2?", "6 plus 8 is 14, which gives 28."]) == [0.5, 1.0]
    assert check_steps(q, ["The sum of 8 and 6 is 48.", "48 * 2 = 96"]) == [0.0, 0.0]
    assert check_steps("What is 8 - 1?", ["We need the difference.", "The answer is 8 - 1 = 7."]) == [0.5, 1.0]
    c = 'How many times does the letter "a" appear in total in the words "banana", "pizza"?'
    assert check_steps(c, ["The letter a appears 3 times in banana and 1 time in pizza.", "The total is 4."]) == [1.0, 1.0]
    assert check_steps(c, ["The total of 3 and 1 is 5."]) == [0.0]


@pytest.mark.parametrize("text, expected", [
    ("<|im_start|>answer\nFinal Answer: 18. That is 21 less than last week.", "18"),   # the answer, not the line's last number
    ("<|im_start|>answer\nThe answer is 25. She sold 18 eggs in total.", "25"),
    ("</think>\nFinal Answer: 18 eggs", "18"),
    ("</think>\n18", "18"),                                                        # bare, right after the delimiter
    ("</think>\nFinal Answer: 1{,}000", "1000"),
    ("</think>\nFinal Answer: 2 + 6", "6"),                                         # a restated question is not 8
    ("The result is 8 after all.</think>\n", None),                                 # only the answer after thinking counts
    ("Thinking: 8.</think>\nI am not sure.", None),                                 # unlabelled prose after thinking: none
    ("<|im_start|>think\n\\boxed{8}<|im_start|>answer\nAnswer: 7", "7"),
    ("I added them and got 8.", "8"),                                                # no delimiter: the reply's last number
    ("Final Answer: 8. Then 9 more.", "8"),                                          # no delimiter, but labelled: the label wins
    ("no number", None), ("", None), (None, None),
])
def test_read_answer_grades_the_answer_after_thinking(text, expected):
    assert read_answer(text) == expected
