"""Quality filter: drop what cannot teach (REFERENCE §1, s1K curation: "API errors, questions with images/figures,
odd formatting"), one reason code per drop, the first rule that fails deciding it.

    kept = quality_filter(questions, QualityConfig(), drops.append)

    generation_error   metadata["traces"]["error"] is set, a sample's finish_reason is "error", or a sample's text
                       starts with an API error (``error_markers``, within its first 300 characters)
    bad_encoding       U+FFFD replacement characters, lone surrogates or control characters in the question,
                       solution or answer (text that was not UTF-8 once)
    figure             the question needs a picture: ``[asy]``, ``![image]``, ``<img``, "in the figure below", ...
                       (``figure_markers``, case-insensitive)
    too_short / too_long    question length in characters outside [min_chars, max_chars]
    unbalanced_dollars an odd number of unescaped ``$`` that currency ("costs $5") does not explain
    unbalanced_braces  unescaped ``{`` / ``}`` that do not pair up
    non_text           under ``min_text_fraction`` of the question is letters, digits or spaces
    no_answer          (``require_answer``) the question has no final answer
    trace_no_answer    (``require_trace_answer``, questions with traces) no sample of metadata["traces"] has an answer

Traces follow the shape the traces stage writes::

    metadata["traces"] = {"samples": [{"thinking": str, "attempt": str, "answer": str | None, "thinking_tokens": int,
                                       "finish_reason": str, "model": str}, ...], "error": str (only on failure)}

Questions without ``metadata["traces"]`` skip the trace rules. Nothing is edited; kept questions pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from curation.schema import Drop, Question
from engine.errors import ConfigError, TTScaleError

STAGE = "quality"
REASONS = ("generation_error", "bad_encoding", "figure", "too_short", "too_long", "unbalanced_dollars",
           "unbalanced_braces", "non_text", "no_answer", "trace_no_answer")
FIGURE_MARKERS = ("[asy]", "![image]", "![](", "<img", "\\includegraphics", "in the figure", "in the diagram",
                  "figure below", "diagram below", "picture below", "image below", "graph below", "shown in the figure",
                  "see the figure", "see figure", "the figure shows", "the diagram shows", "pictured below")
ERROR_MARKERS = ("api error", "error code:", "internal server error", "service unavailable", "rate limit",
                 "quota exceeded", "resource_exhausted", "request timed out", "too many requests", "bad gateway",
                 "content filter", "blocked by safety")
ERROR_WINDOW = 300  # characters at the start of a trace text searched for an error marker
# Escaped dollars (\$) are text; a dollar right before a number that no $ closes is currency ("costs $5 each").
_DOLLAR = re.compile(r"(?<!\\)\$")
_CURRENCY = re.compile(r"(?<![\\$\w])\$(?=\d[\d,]*(?:\.\d+)?(?![\d,.]*\$))")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class QualityConfig:
    """Every quality rule and its setting (one ``ttscale curate`` flag each). Refuses impossible bounds (``ConfigError``)."""

    drop_errors: bool = field(default=True, metadata={"help": "drop questions whose traces failed (API errors, error markers)", "negate": True})
    error_markers: tuple[str, ...] = field(default=ERROR_MARKERS, metadata={
        "help": "texts that mark a failed generation at the start of a trace (case-insensitive)", "flag": "--error-marker", "action": "append"})
    drop_bad_encoding: bool = field(default=True, metadata={"help": "drop text with replacement characters, lone surrogates or control characters", "negate": True})
    drop_figures: bool = field(default=True, metadata={"help": "drop questions that need a figure", "negate": True})
    figure_markers: tuple[str, ...] = field(default=FIGURE_MARKERS, metadata={
        "help": "texts that mark a figure-dependent question (case-insensitive)", "flag": "--figure-marker", "action": "append"})
    min_chars: int = field(default=10, metadata={"help": "shortest question kept, in characters"})
    max_chars: int = field(default=20000, metadata={"help": "longest question kept, in characters"})
    check_math_delimiters: bool = field(default=True, metadata={"help": "drop questions with unbalanced $ or braces", "negate": True})
    min_text_fraction: float = field(default=0.4, metadata={  # MATH-500's lowest is 0.52 ("Find $k$, if ${(3^k)}^6=3^6$.")
        "help": "least fraction of a question's characters that are letters, digits or spaces (0 turns the rule off)"})
    require_answer: bool = field(default=False, metadata={"help": "drop questions without a final answer"})
    require_trace_answer: bool = field(default=True, metadata={
        "help": "drop questions whose traces (when present) hold no final answer", "negate": True})

    def __post_init__(self):
        for name in ("min_chars", "max_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"`{name}` must be an integer >= 0, got {value!r}")
        if self.max_chars < self.min_chars:
            raise ConfigError(f"`max_chars` ({self.max_chars}) is below `min_chars` ({self.min_chars}); raise it or lower min_chars")
        if not isinstance(self.min_text_fraction, (int, float)) or not 0 <= self.min_text_fraction <= 1:
            raise ConfigError(f"`min_text_fraction` must be a number in [0, 1], got {self.min_text_fraction!r}")
        for name in ("error_markers", "figure_markers"):
            if any(not isinstance(m, str) or not m for m in getattr(self, name)):
                raise ConfigError(f"`{name}` must hold non-empty strings, got {getattr(self, name)!r}")


# ─── the rules: each a pure function of a question, giving a detail when it fails ──────────────────────────────


def _samples(q: Question) -> list[dict] | None:
    traces = q.metadata.get("traces")
    if traces is None:
        return None
    if not isinstance(traces, dict) or not isinstance(traces.get("samples", []), list):
        raise TTScaleError(f"question {q.id}: metadata['traces'] must be a mapping with a list of samples; "
                           "the traces stage writes {'samples': [...]}")
    return traces.get("samples", [])


def generation_error(q: Question, markers: tuple[str, ...]) -> str | None:
    """Why the question's traces failed (the ``error`` field, an ``error`` finish, an error marker), or None."""
    traces = q.metadata.get("traces")
    if isinstance(traces, dict) and traces.get("error"):
        return f"trace error: {str(traces['error'])[:120]}"
    lowered = tuple(m.lower() for m in markers)
    for i, s in enumerate(_samples(q) or []):
        if s.get("finish_reason") == "error":
            return f"sample {i} finished with an error"
        for key in ("attempt", "thinking"):
            head = str(s.get(key) or "")[:ERROR_WINDOW].lower()
            hit = next((m for m in lowered if m in head), None)
            if hit is not None:
                return f"sample {i} {key} starts with an error ({hit!r})"
    return None


def bad_encoding(q: Question) -> str | None:
    """Which field holds a replacement character, a lone surrogate or a control character, or None."""
    for name in ("question", "solution", "answer"):
        text = getattr(q, name)
        if "\ufffd" in text:
            return f"{name} holds U+FFFD replacement characters"
        if _SURROGATE.search(text):
            return f"{name} holds a lone surrogate (bytes that were not UTF-8)"
        if (m := _CONTROL.search(text)) is not None:
            return f"{name} holds the control character {m.group(0)!r}"
    return None


def figure(q: Question, markers: tuple[str, ...]) -> str | None:
    """The first figure marker in the question (case-insensitive), or None."""
    lowered = q.question.lower()
    hit = next((m for m in markers if m.lower() in lowered), None)
    return f"the question has {hit!r}" if hit is not None else None


def unbalanced_dollars(text: str) -> str | None:
    """Why the ``$`` of ``text`` do not pair up, or None. Currency dollars ("$5" with no ``$`` closing it) are
    allowed to stand alone: an even count, or an even count once they are left out, is balanced."""
    n = len(_DOLLAR.findall(text))
    if n % 2 == 0 or (n - len(_CURRENCY.findall(text))) % 2 == 0:
        return None
    return f"{n} unescaped $ (odd)"


def unbalanced_braces(text: str) -> str | None:
    """Why the unescaped braces of ``text`` do not pair up (a ``}`` before its ``{``, or some left open), or None."""
    depth, i = 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return f"a '}}' at character {i} closes nothing"
        i += 1
    return f"{depth} '{{' left open" if depth else None


def text_fraction(text: str) -> float:
    """The fraction of characters that are letters, digits or whitespace (1.0 for empty text)."""
    if not text:
        return 1.0
    return sum(1 for ch in text if ch.isalnum() or ch.isspace()) / len(text)


def check(q: Question, config: QualityConfig) -> tuple[str, str] | None:
    """The first rule ``q`` fails, as ``(reason, detail)``, in the order of :data:`REASONS`; None when it passes all.
    Refuses metadata["traces"] that is not the traces stage's shape."""
    if config.drop_errors and (why := generation_error(q, config.error_markers)):
        return "generation_error", why
    if config.drop_bad_encoding and (why := bad_encoding(q)):
        return "bad_encoding", why
    if config.drop_figures and (why := figure(q, config.figure_markers)):
        return "figure", why
    n = len(q.question.strip())
    if n < config.min_chars:
        return "too_short", f"{n} characters, fewer than min_chars={config.min_chars}"
    if n > config.max_chars:
        return "too_long", f"{n} characters, more than max_chars={config.max_chars}"
    if config.check_math_delimiters:
        if why := unbalanced_dollars(q.question):
            return "unbalanced_dollars", why
        if why := unbalanced_braces(q.question):
            return "unbalanced_braces", why
    if config.min_text_fraction > 0 and (frac := text_fraction(q.question)) < config.min_text_fraction:
        return "non_text", f"{frac:.0%} letters, digits or spaces, under min_text_fraction={config.min_text_fraction:g}"
    if config.require_answer and not q.answer.strip():
        return "no_answer", "the question has no final answer"
    samples = _samples(q)
    if config.require_trace_answer and samples is not None:
        if not any(isinstance(s, dict) and str(s.get("answer") or "").strip() for s in samples):
            return "trace_no_answer", f"none of its {len(samples)} trace samples has a final answer"
    return None


def quality_filter(questions: Iterable[Question], config: QualityConfig | None,
                   on_drop: Callable[[Drop], None]) -> Iterator[Question]:
    """The questions that pass every rule of ``config`` (default :class:`QualityConfig`), in order; each other one goes
    to ``on_drop`` with its reason code (:data:`REASONS`) and a detail. Refuses malformed ``metadata["traces"]``."""
    config = config or QualityConfig()
    for q in questions:
        failed = check(q, config)
        if failed is None:
            yield q
        else:
            on_drop(Drop(q.id, STAGE, failed[0], failed[1], q.source))
