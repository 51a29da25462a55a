"""A programmatic teacher for the synthetic tasks (``benchmarks.data.synthetic``): exact step-by-step traces, with
planted slips that the trace itself catches and fixes after "Wait".

    teacher_trace('What is (3 + 1) * 3?', slip_rate=0.5, seed=0)
    -> thinking  "Let me work it out step by step, left to right.\\n\\n3 + 1 = 4.\\n\\n4 * 3 = 13. Wait, 4 * 3 = 12, not 13.
                  \\n\\nSo the answer is 12."
       attempt   "3 + 1 = 4, then 4 * 3 = 12.\\n\\nAnswer: 12"           (style "boxed": "... is $\\boxed{12}$.";
                                                                       style "bare": "12")
       answer    "12", slips [{"step": 1, "wrong": "13", "right": "12"}]

Why: budget forcing appends "Wait" and relies on the model then re-checking its work (REFERENCE §1). A model fine-tuned
on traces where "Wait" is followed by a correction learns that habit; these traces let an SFT run show it at small
scale, with every value known exactly. The values come from :func:`benchmarks.data.synthetic.solution_steps` (the
module's own solution, which :func:`~benchmarks.data.synthetic.check_steps` verifies), so the teacher never disagrees
with the checker or the gold answer.

Slips: each checkable step (an operation, a word count, a sum) is slipped with probability ``slip_rate``: a wrong
value (off by 1 or 2, never negative) stated first, then ``Wait``, the right value and "not <wrong>". Every step
after a slip uses the right value, so the trace ends on the gold answer whatever the slips. Deterministic in
``(seed, question, sample)``. Torch-free.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from benchmarks.data.synthetic import solution_steps
from engine.answers import extract_answer
from engine.errors import TTScaleError

STYLES = ("answer", "boxed", "bare")
WAIT = "Wait"
_OP = re.compile(r"^(\d+) ([+\-*]) (\d+) = (\d+)$")
_WORD = re.compile(r'^"([a-z]+)" has (\d+)\.$')
_SUM = re.compile(r"^([\d +]+) = (\d+)$")
_LETTER = re.compile(r'the letter "([a-z])"')


@dataclass(frozen=True)
class Slip:
    """A planted wrong value: the index of the thinking step (0 = the first after the opening line), the wrong value
    stated and the right one the trace then gives."""

    step: int
    wrong: str
    right: str
    caught: str = "inline"  # or "check": fixed by the check at the end of the trace

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return {"step": self.step, "wrong": self.wrong, "right": self.right, "caught": self.caught}


def is_teachable(question: str) -> bool:
    """Whether the teacher can solve ``question`` (a synthetic arith or count question). Never raises."""
    try:
        solution_steps(question)
    except TTScaleError:
        return False
    return True


def _wrong(rng: random.Random, right: int) -> int:
    choices = [right + d for d in (-2, -1, 1, 2) if right + d >= 0]
    return rng.choice(choices)


def _spelled(word: str, letter: str) -> str:
    """``s t [r] a w b e [r] [r] y``: every letter, the counted ones marked (no digits, so no claim is misread)."""
    return " ".join(f"[{c}]" if c == letter else c for c in word)


def teacher_trace(question: str, *, slip_rate: float = 0.0, seed: int = 0, sample: int = 0,
                  style: str = "answer", check_rate: float = 0.0) -> dict:
    """One exact trace of a synthetic question: ``{"thinking", "attempt", "answer", "slips"}`` (slips as dicts).

    ``thinking`` is paragraphs separated by blank lines, one claim each (the opening line aside); ``attempt`` restates
    the chain and ends in s1K's style, ``Answer: N`` (``style="answer"``) or ``$\\boxed{N}$`` (``"boxed"``), or is the
    bare answer ``N`` (``"bare"``: nothing is computed after thinking, so a thinking budget bounds all the work); ``answer``
    is what :func:`engine.answers.extract_answer` reads from the attempt, always the gold answer. Refuses a question
    the synthetic tasks did not generate, a ``slip_rate`` or ``check_rate`` outside [0, 1] and an unknown style.

    ``check_rate``: the chance that the trace ends with a check after its first conclusion, "Wait, let me check: <every
    step again>" and the conclusion again — where budget forcing appends "Wait". When a checked trace's last step
    slips, the slip is not fixed in place: the first conclusion is wrong and the check catches it ("..., not 13"),
    so "Wait" is taught as "look again" (confirming or fixing), not as "the value before me was wrong". A slip caught
    by the check has ``"caught": "check"`` (else ``"inline"``).
    """
    for name, rate in (("slip_rate", slip_rate), ("check_rate", check_rate)):
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise TTScaleError(f"{name}={rate!r} must be a probability in [0, 1]")
    if style not in STYLES:
        raise TTScaleError(f"style={style!r} is not an answer style; use one of {', '.join(STYLES)}")
    try:
        steps = solution_steps(question)
    except TTScaleError:
        raise TTScaleError(f"the teacher cannot solve {question[:80]!r}: it knows only the synthetic arith and count "
                           "questions of benchmarks.data.synthetic; use another trace source for other questions") from None
    rng = random.Random(f"ttscale-teacher:{seed}:{sample}:{question}")
    letter_match = _LETTER.search(question)
    letter = letter_match.group(1) if letter_match else ""
    paragraphs: list[str] = []
    chain: list[str] = []
    slips: list[Slip] = []

    def slipped() -> bool:
        return slip_rate > 0 and rng.random() < slip_rate

    checked = check_rate > 0 and rng.random() < check_rate
    late: Slip | None = None  # the last step's slip, left for the check to catch
    body = steps[:-1]
    for index, step in enumerate(body):
        if m := _WORD.match(step):
            word, right = m.group(1), int(m.group(2))
            spelled = _spelled(word, letter)
            text = f'"{word}": {spelled}, so "{word}" has {right}.'
            if slipped():
                wrong = _wrong(rng, right)
                text = (f'"{word}": {spelled}, so "{word}" has {wrong}. {WAIT}, counting the marked letters again, '
                        f'"{word}" has {right}, not {wrong}.')
                slips.append(Slip(len(paragraphs), str(wrong), str(right)))
            chain.append(f'"{word}" has {right}')
        elif letter and (m := _SUM.match(step)):  # a count task's total (it also reads as an operation)
            lhs, right = m.group(1), int(m.group(2))
            text = f"In total {lhs} = {right}."
            if slipped():
                wrong = _wrong(rng, right)
                text = f"In total {lhs} = {wrong}. {WAIT}, {lhs} = {right}, not {wrong}."
                slips.append(Slip(len(paragraphs), str(wrong), str(right)))
            chain.append(f"{lhs} = {right}")
        elif m := _OP.match(step):
            lhs, right = f"{m.group(1)} {m.group(2)} {m.group(3)}", int(m.group(4))
            text = f"{lhs} = {right}."
            if slipped():
                wrong = _wrong(rng, right)
                if checked and index == len(body) - 1:
                    text = f"{lhs} = {wrong}."
                    late = Slip(len(paragraphs), str(wrong), str(right), "check")
                    slips.append(late)
                else:
                    text = f"{lhs} = {wrong}. {WAIT}, {lhs} = {right}, not {wrong}."
                    slips.append(Slip(len(paragraphs), str(wrong), str(right)))
            chain.append(f"{lhs} = {right}")
        else:  # solution_steps changed its wording: better to fail loudly than to teach a wrong trace
            raise TTScaleError(f"the teacher does not understand the solution step {step!r}; update curation/teacher.py")
        paragraphs.append(text)
    gold = steps[-1].removeprefix("Answer: ").strip()
    opening = (f'Let me spell each word and count the letter "{letter}".' if letter
               else "Let me work it out step by step, left to right.")
    ending = [f"So the answer is {gold}."]
    if checked:
        again = ", ".join(chain)
        if late is not None:
            again = f"{again}, not {late.wrong}"
        ending = [f"So the answer is {late.wrong if late else gold}.", f"{WAIT}, let me check: {again}.",
                  f"So the answer is {gold}."]
    thinking = "\n\n".join([opening, *paragraphs, *ending])
    restated = ", then ".join(chain) + "."
    attempt = {"answer": f"{restated}\n\nAnswer: {gold}", "boxed": f"{restated}\n\nThe answer is $\\boxed{{{gold}}}$.",
               "bare": gold}[style]
    return {"thinking": thinking, "attempt": attempt, "answer": extract_answer(attempt),
            "slips": [s.to_json() for s in slips]}
