"""The one record every curation stage reads and writes, and the record of a question a stage dropped.

    Question(question, solution, answer, source, metadata)   id = a hash of the normalised question text
    Drop(id, stage, reason, detail)                           why a stage removed a question (kept in the report)

A stage is a function of questions (``Iterable[Question]``) that yields the questions it keeps and records a
:class:`Drop` for each it removes; nothing is dropped without a reason. Fields added by later stages live in
``metadata`` under the stage's name (``metadata["traces"]``, ``metadata["difficulty"]``, ``metadata["domain"]``), so
the schema stays one dataclass from pool to output. Torch-free.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

from engine.errors import TTScaleError

_SPACE = re.compile(r"\s+")

# The pipeline's stages, in the order they run (``ttscale curate STAGE`` runs one).
STAGES = ("pool", "decontaminate", "traces", "quality", "difficulty", "diversity", "select")


def normalise(text: str) -> str:
    """Lower-cased, whitespace-collapsed text: the form s1's 8-gram rule and the question id are computed on."""
    return _SPACE.sub(" ", text.lower()).strip()


def question_id(text: str) -> str:
    """16 hex digits of the SHA-256 of the normalised question: equal questions (up to case and spacing) share it."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:16]


@dataclass
class Question:
    """One question of the pool: its text, reference solution and final answer (either may be empty when the source
    has none), where it came from, and what the stages learnt about it (``metadata``).

    Refuses a question that is not non-empty text; ``id`` defaults to :func:`question_id` of the text.
    """

    question: str
    solution: str = ""
    answer: str = ""
    source: str = ""
    metadata: dict = field(default_factory=dict)
    id: str = ""

    def __post_init__(self):
        if not isinstance(self.question, str) or not self.question.strip():
            raise TTScaleError(f"a question from {self.source or 'the pool'} is empty or not text ({self.question!r}); "
                               "every row needs question text")
        for name in ("solution", "answer", "source"):
            value = getattr(self, name)
            if value is None:
                setattr(self, name, "")
            elif not isinstance(value, str):
                setattr(self, name, str(value))
        if not isinstance(self.metadata, dict):
            raise TTScaleError(f"question {self.question[:40]!r}: metadata must be a mapping, got {type(self.metadata).__name__}")
        if not self.id:
            self.id = question_id(self.question)

    def to_json(self) -> dict:
        """A JSON-ready dict (the form stage caches and outputs store)."""
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> "Question":
        """The inverse of :meth:`to_json`; refuses a row without question text."""
        return cls(**{k: row.get(k, "" if k != "metadata" else {}) for k in ("question", "solution", "answer", "source", "metadata", "id")})


@dataclass(frozen=True)
class Drop:
    """A question a stage removed: which, where, why (a short reason code such as ``contaminated``, ``duplicate``,
    ``figure``, ``solved``) and a human detail (``8-gram 'what is the value of ...' of math500``)."""

    id: str
    stage: str
    reason: str
    detail: str = ""
    source: str = ""

    def to_json(self) -> dict:
        """A JSON-ready dict (one line of a stage's ``drops.jsonl``)."""
        return asdict(self)
