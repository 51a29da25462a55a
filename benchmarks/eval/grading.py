"""Grading an evaluation's rows, without a model: one :class:`Grader` serves the run (``methods.Context``) and
``ttscale eval report DIR --regrade`` (:mod:`benchmarks.eval.regrade`), so a regrade reads answers exactly as a new run
would.

    choice problems (GPQA)   the letter the text commits to (``engine.answers.extract_choice``), compared as a letter
    synthetic problems       the number of the answer after thinking (``benchmarks.data.synthetic.read_answer``)
    everything else          ``engine.answers.extract_answer`` then math-verify (``is_equivalent(gold, answer)``)

Answers are read after the format's end-of-thinking delimiter (and the known ones: ``<|im_start|>answer``,
``</think>``), which the stored configuration names, so no tokenizer is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.data.datasets import LETTERS
from benchmarks.data.synthetic import read_answer
from engine.answers import ANSWER_DELIMITERS, extract_answer, extract_choice, is_equivalent


def is_synthetic(dataset: str) -> bool:
    """Whether ``--dataset`` names generated synthetic problems (graded by number)."""
    return dataset == "synthetic" or dataset.startswith("synthetic:")


@dataclass(frozen=True)
class Grader:
    """How one evaluation's problems are graded: by number (``synthetic``), and after which ``delimiters``."""

    synthetic: bool
    delimiters: tuple[str, ...] = ANSWER_DELIMITERS

    @classmethod
    def for_run(cls, dataset: str, think_end: str | None = None) -> "Grader":
        """The grader of a run on ``dataset`` whose format ends thinking at ``think_end`` (None: a named format, whose
        delimiter is one of :data:`~engine.answers.ANSWER_DELIMITERS`)."""
        extra = (think_end,) if think_end and think_end not in ANSWER_DELIMITERS else ()
        return cls(synthetic=is_synthetic(dataset), delimiters=extra + ANSWER_DELIMITERS)

    def extract(self, problem, text: str | None) -> str | None:
        """The answer a generation commits to, read the way this problem is graded."""
        if problem.kind == "choice":
            return extract_choice(text, LETTERS[: len(problem.choices)], self.delimiters)
        if self.synthetic:
            return read_answer(text, self.delimiters)
        return extract_answer(text, self.delimiters)

    def is_correct(self, problem, answer: str | None) -> bool:
        """Letter equality (choice), numeric equality (synthetic) or math-verify equivalence (everything else)."""
        if answer is None:
            return False
        if problem.kind == "choice":
            return answer == problem.answer
        if self.synthetic:
            try:
                return float(answer) == float(problem.answer)
            except ValueError:
                return False
        return is_equivalent(problem.answer, answer)
