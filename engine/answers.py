"""Final answers: extract them from model text, canonicalise them, decide equivalence, group them for voting.

    text ──extract_answer──▶ "\\frac{1}{2}" ──canonicalize──▶ key for exact grouping
                                   │
                                   └──is_equivalent(gold, pred)──▶ math-verify verify(parse(gold), parse(pred))

Extraction follows s1's eval (REFERENCE §1): only the text after the last answer delimiter counts when one is
present; inside it the last ``\\boxed{}`` (or ``\\fbox{}``) wins, else the last ``Final Answer:`` / ``Answer:``.
Equivalence is HF ``math-verify`` (REFERENCE §6: ``verify(gold, pred)``, order matters) with canonical string
equality as the fallback; it never raises and is bounded in time (math-verify's own timeouts in the main thread,
a size guard everywhere). Decisions are cached in bounded LRU caches because voting compares many pairs.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from engine.errors import TTScaleError

log = logging.getLogger(__name__)

# Answer delimiters of the thinking formats (engine/formats.py): s1's `<|im_start|>answer`, R1/Qwen3's `</think>`.
ANSWER_DELIMITERS = ("<|im_start|>answer", "</think>")
# Longer answers skip sympy: a parse or simplify of a huge expression is where math-verify can hang.
MAX_SYMBOLIC_CHARS = 400
# Seconds for one math-verify parse / comparison (signal.alarm works in whole seconds, main thread only).
VERIFY_TIMEOUT_S = 3

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ANSWER_LABEL = re.compile(r"(?:final\s+)?answer\s*(?:is\s*:?|:)", re.IGNORECASE)
_INLINE_MATH = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)", re.DOTALL)  # `\$` is a dollar sign


# ─── extraction ────────────────────────────────────────────────────────────────────────────────────────────────


def _braced(text: str, open_at: int) -> int | None:
    """Index just past the ``}`` matching the ``{`` at ``open_at``; ``None`` when it is never closed.

    ``\\{`` and ``\\}`` are literal braces in LaTeX and do not count.
    """
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def boxed_contents(text: str) -> list[str]:
    """Contents of every outermost ``\\boxed{...}`` / ``\\fbox{...}`` (and ``\\boxed 5``) in order of appearance.

    Nested braces are balanced; a box nested inside another is part of the outer one; a box that is never
    closed (text cut off mid-answer) is skipped.
    """
    found, pos = [], 0
    while (m := _BOX_COMMAND.search(text, pos)) is not None:
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _braced(text, i)
            if end is None:
                pos = m.end()
                continue
            found.append(text[i + 1 : end - 1].strip())
            pos = end
        elif i > m.end():  # `\boxed 5`: the box holds the next run of non-space, non-`$` characters
            tail = re.match(r"[^\s$]+", text[i:])
            if tail:
                found.append(tail.group(0).rstrip(".,;"))
            pos = i + (tail.end() if tail else 0)
        else:
            pos = m.end()
    return [c for c in found if c]


def answer_region(text: str, delimiters: tuple[str, ...] = ANSWER_DELIMITERS) -> str:
    """The text after the last answer delimiter present (s1 convention), or the whole text when none is."""
    cut = -1
    for d in delimiters:
        at = text.rfind(d)
        if at >= 0:
            cut = max(cut, at + len(d))
    return text[cut:] if cut >= 0 else text


def _labelled_answer(region: str) -> str | None:
    """What follows the last ``Final Answer:`` / ``Answer:`` / ``answer is`` label.

    That is the rest of its line (or the next non-empty line); when it holds inline math (``$...$``), the last
    math span, so ``The answer is $\\frac{3}{4}$.`` gives ``\\frac{3}{4}``.
    """
    labels = list(_ANSWER_LABEL.finditer(region))
    if not labels:
        return None
    rest = region[labels[-1].end():]
    lines = [ln.strip() for ln in rest.split("\n")]
    line = next((ln for ln in lines if ln), "")
    line = re.sub(r"\s*I hope it is correct\.?\s*$", "", line)
    spans = [next(g for g in m.groups() if g is not None) for m in _INLINE_MATH.finditer(line)]
    if spans:
        line = spans[-1]
    line = line.strip().rstrip(".").strip()
    return line or None


def extract_answer(text: str | None, delimiters: tuple[str, ...] = ANSWER_DELIMITERS) -> str | None:
    """The final answer in ``text`` as written (not canonicalised), or ``None`` when there is none.

    Looks only after the last answer delimiter when one is present (``<|im_start|>answer``, ``</think>``), then
    takes the last complete ``\\boxed{}``/``\\fbox{}``, else the last ``Final Answer:``/``Answer:`` line.
    Never raises; a non-string gives ``None``.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    region = answer_region(text, delimiters)
    boxes = boxed_contents(region)
    if not boxes:
        return _labelled_answer(region)
    answer = boxes[-1]
    while (inner := boxed_contents(answer)) and re.fullmatch(r"\\(?:boxed|fbox)\s*\{.*\}", answer, re.DOTALL):
        answer = inner[0]  # \boxed{\boxed{8}} → 8
    return answer


_CHOICE_IN_BOX = re.compile(r"^\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Z])\)?\s*\}?\s*$")
# "Answer: C", "answer is (c)"; a bare lower-case letter only at the end of a clause ("the answer is a trap" is no choice).
_CHOICE_LABEL = re.compile(r"(?i:answer)\s*(?:(?i:is)\s*:?|:)\s*\**\s*\$?\s*(?:\\text\{)?\s*"
                           r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z])|([a-z])(?=[).,:]|[ \t]*$))", re.MULTILINE)


def extract_choice(text: str | None, letters: str = "ABCD", delimiters: tuple[str, ...] = ANSWER_DELIMITERS) -> str | None:
    """The multiple-choice letter (GPQA style ``A``-``D``) a text commits to, upper-case, or ``None``.

    Looks after the last answer delimiter; prefers the last boxed letter (``\\boxed{C}``, ``\\boxed{\\text{(C)}}``),
    then the last ``Answer: C`` / ``answer is (C)``, then a text that is nothing but a letter. Letters outside
    ``letters`` are ignored.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    region = answer_region(text, delimiters)
    for box in reversed(boxed_contents(region)):
        m = _CHOICE_IN_BOX.match(box.upper() if len(box) <= 3 else box)
        if m and m.group(1) in letters:
            return m.group(1)
    hits = [next(g for g in m.groups() if g).upper() for m in _CHOICE_LABEL.finditer(region)]
    hits = [h for h in hits if h in letters]
    if hits:
        return hits[-1]
    bare = re.fullmatch(r"\s*\(?([A-Za-z])\)?[.\s]*", region)
    if bare and bare.group(1).upper() in letters:
        return bare.group(1).upper()
    return None


# ─── canonical form ────────────────────────────────────────────────────────────────────────────────────────────

_DROP = (r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", r"\displaystyle", "^\\circ", "^{\\circ}", "°", r"\%", "%", r"\$")
_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf|textit|operatorname)\s*\{")


def _unwrap(s: str, pattern: re.Pattern) -> str:
    """Replace every ``\\cmd{content}`` matched by ``pattern`` (which ends at the ``{``) with ``content``."""
    while (m := pattern.search(s)) is not None:
        end = _braced(s, m.end() - 1)
        if end is None:
            break
        s = s[: m.start()] + s[m.end() : end - 1] + s[end:]
    return s


def _strip_math(ans: str) -> str:
    """``ans`` without surrounding ``$``/``$$``/``\\(\\)``/``\\[\\]`` delimiters."""
    s = ans.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def canonicalize(ans: str | None) -> str:
    """A canonical string for exact grouping: equal strings mean the same answer (the converse needs math-verify).

    Strips math delimiters, ``\\boxed``, sizing and spacing commands, ``\\text{}``-style wrappers (keeping the
    text), degree and percent signs, a trailing period and all whitespace; ``\\dfrac``/``\\tfrac`` become
    ``\\frac``; ``1,000`` becomes ``1000``; plain decimals lose trailing zeros (``0.50`` → ``0.5``). Never
    raises; ``None`` gives ``""``.
    """
    if not isinstance(ans, str):
        return ""
    s = _strip_math(ans)
    boxes = boxed_contents(s)
    if len(boxes) == 1 and re.fullmatch(r"\\(?:boxed|fbox)\s*\{.*\}", s, re.DOTALL):
        s = boxes[0]
    s = _unwrap(s, _TEXT_WRAPPERS)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    for token in _DROP:
        s = s.replace(token, "")
    s = re.sub(r"\\ |~", " ", s)
    s = re.sub(r"\s+", "", s).rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d*\.\d+", s):
        s = s.rstrip("0").rstrip(".") or "0"
        if s.startswith("."):
            s = "0" + s
        elif s.startswith("-."):
            s = "-0" + s[1:]
    return s


# ─── equivalence ───────────────────────────────────────────────────────────────────────────────────────────────


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=8192)
def _parsed(ans: str, timed: bool):
    """math-verify's parse of one answer, wrapped as display math so bare LaTeX is found; ``[]`` on any failure."""
    from math_verify import parse  # deferred: math-verify (and sympy) load in ~1 s, only once grading starts

    try:
        return parse(f"$\\boxed{{{ans}}}$", parsing_timeout=VERIFY_TIMEOUT_S if timed else None)
    except BaseException as exc:  # noqa: BLE001 — math-verify's TimeoutException is not an Exception subclass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.debug("math-verify could not parse %r: %s", ans, exc)
        return []


@lru_cache(maxsize=65536)
def _verified(gold: str, pred: str, timed: bool) -> bool:
    from math_verify import verify  # deferred: see _parsed

    g, p = _parsed(gold, timed), _parsed(pred, timed)
    if not g or not p:
        return False
    try:
        return bool(verify(g, p, timeout_seconds=VERIFY_TIMEOUT_S if timed else None))
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.debug("math-verify could not compare %r with %r: %s", gold, pred, exc)
        return False


def is_equivalent(gold: str | None, pred: str | None) -> bool:
    """Whether ``pred`` is the same answer as ``gold`` (order matters, as in math-verify's ``verify``).

    True when the canonical strings are equal, else math-verify decides on ``parse`` of each (wrapped as
    ``$\\boxed{...}$``, so bare LaTeX, ``$...$`` and text answers all parse). Returns ``False`` for ``None`` or
    empty answers. Never raises and never hangs: parses and comparisons time out after ``VERIFY_TIMEOUT_S``
    in the main thread (math-verify uses ``signal.alarm``), and answers over ``MAX_SYMBOLIC_CHARS`` characters
    are compared as canonical strings only. Results are cached (bounded LRU).
    """
    if not isinstance(gold, str) or not isinstance(pred, str):
        return False
    cg, cp = canonicalize(gold), canonicalize(pred)
    if not cg or not cp:
        return False
    if cg == cp:
        return True
    g, p = _strip_math(gold), _strip_math(pred)
    if len(g) > MAX_SYMBOLIC_CHARS or len(p) > MAX_SYMBOLIC_CHARS:
        return False
    return _verified(g, p, _in_main_thread())


def clear_caches() -> None:
    """Empty the parse and equivalence caches (they are bounded; this only frees memory early)."""
    _parsed.cache_clear()
    _verified.cache_clear()


# ─── voting groups ─────────────────────────────────────────────────────────────────────────────────────────────


@dataclass
class AnswerGroup:
    """Equivalent answers: the first one seen represents the group; ``members`` are indices into the input list."""

    answer: str
    canonical: str
    count: int = 0
    weight: float = 0.0
    members: list[int] = field(default_factory=list)


def group_answers(answers: list[str | None], weights: list[float] | None = None) -> list[AnswerGroup]:
    """Group equivalent answers for majority (``count``) or weighted (``weight``) voting, best group first.

    ``None`` or empty answers are skipped (they belong to no group). Answers with the same canonical string
    are grouped without math-verify; distinct canonical forms are merged when math-verify finds them
    equivalent in either order (``\\frac{1}{2}`` and ``0.5``). Without ``weights`` each answer weighs 1.
    Groups are sorted by weight, then count, then first appearance. Refuses ``weights`` of another length.
    """
    if weights is not None and len(weights) != len(answers):
        raise TTScaleError(f"group_answers: weights has {len(weights)} entries for {len(answers)} answers; give one weight per answer")
    groups: list[AnswerGroup] = []
    by_canonical: dict[str, AnswerGroup] = {}
    for i, ans in enumerate(answers):
        key = canonicalize(ans)
        if not key:
            continue
        group = by_canonical.get(key)
        if group is None:
            group = next((g for g in groups if is_equivalent(g.answer, ans) or is_equivalent(ans, g.answer)), None)
            if group is None:
                group = AnswerGroup(answer=ans, canonical=key)
                groups.append(group)
            by_canonical[key] = group
        group.count += 1
        group.weight += 1.0 if weights is None else float(weights[i])
        group.members.append(i)
    order = {id(g): k for k, g in enumerate(groups)}
    return sorted(groups, key=lambda g: (-g.weight, -g.count, order[id(g)]))
