"""The programmatic teacher: its final answer is always the gold, every planted slip is caught and corrected after
"Wait", and its slip-free steps pass the synthetic step checker."""

import re

import pytest

from benchmarks.data.synthetic import check_steps, load_synthetic
from curation.teacher import WAIT, is_teachable, teacher_trace
from engine.answers import extract_answer
from engine.errors import TTScaleError

NAMES = ("synthetic:arith:1", "synthetic:arith:3", "synthetic:arith:6", "synthetic:count:1", "synthetic:count:3")


@pytest.mark.parametrize("name", NAMES)
def test_final_answer_is_gold_and_every_slip_is_fixed(name):
    planted = 0
    for problem in load_synthetic(name, limit=15, seed=3):
        for seed in range(8):
            for rate, style, check in ((0.0, "answer", 0.0), (0.4, "boxed", 0.0), (1.0, "answer", 0.0), (0.4, "bare", 0.0),
                                       (0.5, "bare", 1.0), (0.0, "answer", 1.0)):
                t = teacher_trace(problem.question, slip_rate=rate, seed=seed, style=style, check_rate=check)
                assert t["answer"] == problem.answer == extract_answer(t["attempt"])
                assert t["thinking"].endswith(f"So the answer is {problem.answer}.")
                assert (r"\boxed{" in t["attempt"]) == (style == "boxed")
                assert (t["attempt"] == problem.answer) == (style == "bare")  # bare: nothing computed after thinking
                paragraphs = t["thinking"].split("\n\n")[1:-1]
                if check:  # the steps, the first conclusion, then the check: "Wait, let me check: <every step>."
                    late = [s for s in t["slips"] if s["caught"] == "check"]
                    first, checking = paragraphs[-2], paragraphs[-1]
                    paragraphs = paragraphs[:-2]
                    assert checking.startswith(f"{WAIT}, let me check: ") and len(late) <= 1
                    assert first == f"So the answer is {late[0]['wrong'] if late else problem.answer}."
                    if late:  # the last step's slip, left in place, is what the check catches
                        assert late[0]["step"] == len(paragraphs) - 1 and checking.endswith(f", not {late[0]['wrong']}.")
                        assert paragraphs[-1].endswith(f" = {late[0]['wrong']}.")
                        slips_inline = [s for s in t["slips"] if s["caught"] == "inline"]
                    else:
                        slips_inline = t["slips"]
                else:
                    slips_inline = t["slips"]
                    assert all(s["caught"] == "inline" for s in t["slips"])
                if rate == 1.0:
                    assert len(t["slips"]) == len(paragraphs)  # every checkable step slipped
                if rate == 0.0:
                    assert t["slips"] == [] and (WAIT not in t["thinking"]) == (check == 0.0)
                for slip in slips_inline:
                    text = paragraphs[slip["step"]]
                    assert slip["wrong"] != slip["right"] and int(slip["wrong"]) >= 0
                    assert f" {slip['wrong']}. {WAIT}, " in text  # stated wrong first ...
                    assert text.endswith(f"{slip['right']}, not {slip['wrong']}.")  # ... then corrected
                    planted += 1
    assert planted > 100


@pytest.mark.parametrize("name", NAMES)
def test_slip_free_steps_pass_the_step_checker(name):
    for problem in load_synthetic(name, limit=10):
        t = teacher_trace(problem.question)
        steps = t["thinking"].split("\n\n")
        assert check_steps(problem.question, steps)[1:] == [1.0] * (len(steps) - 1)
        assert check_steps(problem.question, t["attempt"].split("\n\n")) == [1.0, 1.0]


def test_the_brief_example_and_determinism():
    q = "What is (3 + 1) * 3?"
    t = teacher_trace(q, slip_rate=1.0, seed=0)
    assert re.search(r"3 \+ 1 = \d+\. Wait, 3 \+ 1 = 4, not \d+\.", t["thinking"])
    assert teacher_trace(q, slip_rate=0.5, seed=1) == teacher_trace(q, slip_rate=0.5, seed=1)
    variants = {teacher_trace(load_synthetic("synthetic:arith:6", limit=1)[0].question, slip_rate=0.5, seed=s)["thinking"]
                for s in range(6)}
    assert len(variants) > 1
    count = load_synthetic("synthetic:count:1", limit=1)[0]
    letter = count.meta["letter"]
    assert f'count the letter "{letter}"' in teacher_trace(count.question)["thinking"]
    assert f"[{letter}]" in teacher_trace(count.question)["thinking"]  # the counted letters are marked


def test_refusals():
    assert not is_teachable("What is the capital of France?") and is_teachable("What is 7 + 5?")
    with pytest.raises(TTScaleError, match="teacher cannot solve"):
        teacher_trace("What is the capital of France?")
    with pytest.raises(TTScaleError, match="slip_rate"):
        teacher_trace("What is 7 + 5?", slip_rate=1.5)
    with pytest.raises(TTScaleError, match="style"):
        teacher_trace("What is 7 + 5?", style="latex")
