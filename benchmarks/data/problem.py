"""One benchmark problem: the schema every dataset loader, the synthetic generator and the evaluation share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.errors import TTScaleError

KINDS = ("math", "choice")
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Problem:
    """One benchmark question with its reference answer.

    ``kind`` is ``math`` (free-form answer, graded by equivalence) or ``choice`` (``choices`` listed in the
    question as ``A) …``; ``answer`` is the letter). ``meta`` keeps the other fields of the source row.
    """

    id: str
    question: str
    answer: str
    kind: str = "math"
    choices: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise TTScaleError(f"Problem {self.id}: kind={self.kind!r}; use 'math' or 'choice'")
        if not str(self.question).strip():
            raise TTScaleError(f"Problem {self.id}: the question is empty; every problem needs question text")
        if self.kind == "choice":
            if not 2 <= len(self.choices) <= len(LETTERS):
                raise TTScaleError(f"Problem {self.id}: a choice problem needs 2 to {len(LETTERS)} choices, got {len(self.choices)}")
            if self.answer not in LETTERS[: len(self.choices)]:
                raise TTScaleError(f"Problem {self.id}: answer={self.answer!r} must be one of the letters "
                                   f"{', '.join(LETTERS[: len(self.choices)])}")

    def to_dict(self) -> dict:
        """The problem as a JSON-ready dict (choices as a list)."""
        d = asdict(self)
        d["choices"] = list(self.choices)
        return d
