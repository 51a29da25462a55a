"""Final answers: extract them from model text, canonicalise them, decide equivalence, group them for voting.

    text ──extract_answer──▶ "\\frac{1}{2}" ──canonicalize──▶ key for exact grouping
                                   │
                                   └──is_equivalent(gold, pred)──▶ math-verify verify(parse(gold), parse(pred))

Extraction rule order (``extract_answer``; ``extract_choice`` follows the same order for letters):

    1. segment  only the text after the last answer delimiter (``ANSWER_DELIMITERS`` or the caller's) when one is
                present (s1, REFERENCE §1); else the whole text.
    2. box      the last complete ``\\boxed{}`` / ``\\fbox{}`` in the segment.
    3. label    the answer *clause* after the last label in the segment ("Final Answer:", "Answer:", "the answer
                is", "**Answer:**", "answer =", a "## Final Answer" heading): from the label to the end of its
                first sentence or line, never inside ``$...$`` / ``\\(...\\)`` / ``\\[...\\]`` or braces. Then:
                a. a clause that is all mathematics is the answer as written (outer ``$`` stripped): ``x = 5``,
                   ``\\dfrac{1}{2}``, ``1{,}000``, ``12 * 13 = 19``;
                b. LaTeX that starts a clause is kept up to the first word: "3\\sqrt{13} units" → ``3\\sqrt{13}``;
                c. any other clause goes to math-verify, which reads its *first* complete answer (a number with
                   sign, decimals, thousands separators, currency or percent, its string dropping the ``%``; an
                   expression, whose result it takes after ``=``; a ``$...$`` span) and stops there, so units, words
                   and trailing sentences are dropped: "18 eggs" → ``18``, "She makes 18 dollars every day." →
                   ``18``, "She sold 16 - 3 - 4 = 9 eggs" → ``9``; "25. She sold 18 eggs." is cut to ``25`` first;
                d. a clause in which math-verify finds nothing is kept as text ("Evelyn").
    4. bare     after a delimiter, a segment whose first clause starts with mathematics (``<|im_start|>answer\\n18``),
                read as in 3a-c; without a delimiter, a text that is nothing but one mathematical clause (``42``).

math-verify does the reading in 3c: ``parse("Answer: " + clause)`` with only its answer-anchored patterns
(``LatexExtractionConfig`` / ``ExprExtractionConfig`` with ``try_extract_without_anchor=False``), whose lazy
``answer:.{0,50}?`` finds the first answer after the one label it is given (so an answer must start within 50
characters of the label). Given the whole text instead, its own rules pick the wrong number: "Final Answer: 18. That
is 21 less than last week." matches its ``final answer ... is`` pattern at 21, and its unanchored patterns take the
*rightmost* match. What it has no pattern for is found here: where the segment and the clause are, boxes with
balanced braces, and LaTeX written without ``$``, which it does not extract. Multiple-choice letters have no usable
math-verify pattern (``StringExtractionConfig`` misses ``(C)`` and ``C)``) and are read here.

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
# "Final Answer:", "the answer is", "answer is: $x$", "**Final Answer:**", "**Answer**:", "answer =", "## Final Answer".
_ANSWER_LABEL = re.compile(r"\b(?:final\s+)?answer\b\s*(?:\*\*)?\s*(?:is\b\s*(?:\*\*)?\s*:?|[:=])"
                           r"|^[ \t]*#+[ \t]*(?:final[ \t]+)?answer[ \t]*:?[ \t]*$", re.IGNORECASE | re.MULTILINE)
# A math span as math-verify reads them: $$...$$ and \[...\] over lines, $...$ (a `\$` inside is a dollar sign) and
# \(...\) within one.
_MATH_SPAN = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$((?:\\\$|[^\n$])+?)(?<!\\)\$|\\\(([^\n]+?)\\\)|\\\[(.+?)\\\]",
                        re.DOTALL)
_COMMAND = re.compile(r"\\(?:[A-Za-z]+|.)", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]{2,}")  # outside braces and commands, two letters or more are prose (an unbraced `xy` too)
_MATH_START = re.compile(r"[-+−]?(?:\d|\.\d|[$\\(\[{])")  # what a bare answer may start with
_EDGE = " \t\n*:=,;"  # markdown bold and the label's punctuation around a clause (and a full stop at its end)


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


def answer_segment(text: str, delimiters: tuple[str, ...] = ANSWER_DELIMITERS) -> str | None:
    """The text after the last answer delimiter present (s1 convention), or ``None`` when the text has none."""
    cut = max((at + len(d) for d in delimiters if d and (at := text.rfind(d)) >= 0), default=-1)
    return text[cut:] if cut >= 0 else None


def answer_region(text: str, delimiters: tuple[str, ...] = ANSWER_DELIMITERS) -> str:
    """The text after the last answer delimiter present (s1 convention), or the whole text when none is."""
    segment = answer_segment(text, delimiters)
    return text if segment is None else segment


def _trim(clause: str) -> str:
    """``clause`` without markdown bold and punctuation at its edges, nor a full stop at its end (``.5`` keeps its point)."""
    return clause.strip(_EDGE).rstrip(".").rstrip(_EDGE)


def _clause(text: str, start: int = 0) -> str:
    """From ``start`` (leading blanks skipped) to the end of the first sentence or line, edges trimmed.

    A sentence ends at ``.`` followed by a blank or the end (``3.5`` goes on), or at ``?``/``!`` after a letter
    (``5!`` goes on). Math spans and braces are skipped whole: a full stop or line break inside them ends nothing.
    A clause that ends with ``:`` introduces the next one, which is taken instead ("Answer: Here it is:\\n\\n10").
    """
    i = start
    while True:
        while i < len(text) and text[i] in " \t\n*":
            i += 1
        begin, depth = i, 0
        while i < len(text):
            ch = text[i]
            if ch in "$\\" and depth == 0 and (m := _MATH_SPAN.match(text, i)) is not None:
                i = m.end()
                continue
            if ch == "\\":
                i += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth = max(depth - 1, 0)
            elif depth == 0 and (ch == "\n" or (ch == "." and text[i + 1 : i + 2] in ("", " ", "\t", "\n"))
                                 or (ch in "?!" and i > begin and text[i - 1].isalpha())):
                break
            i += 1
        if i >= len(text) or not text[begin:i].rstrip(" \t*").endswith(":"):
            return _trim(text[begin:i])


def _first_word(s: str, skip_spans: bool = True) -> int:
    """Index of the first word of two letters or more outside braces, LaTeX command names (``\\sqrt``,
    ``\\text{cm}``) and, with ``skip_spans``, math spans; ``len(s)`` when there is none: where prose starts."""
    depth, i = 0, 0
    while i < len(s):
        ch = s[i]
        if skip_spans and ch in "$\\" and depth == 0 and (m := _MATH_SPAN.match(s, i)) is not None:
            i = m.end()
            continue
        if ch == "\\":
            m = _COMMAND.match(s, i)
            i = m.end() if m else i + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
        elif depth == 0 and _WORD.match(s, i) is not None:
            return i
        i += 1
    return len(s)


def _has_words(s: str) -> bool:
    """Whether ``s`` holds prose: a word of two letters or more outside braces and LaTeX command names."""
    return _first_word(s, skip_spans=False) < len(s)


def _is_math(clause: str) -> bool:
    """Whether ``clause`` is mathematics only: no prose word outside math spans, no unpaired ``$`` (a price), and
    no box (a box that rule 2 did not take is empty or cut off)."""
    if _BOX_COMMAND.search(clause):
        return False
    rest = _MATH_SPAN.sub(lambda m: " " if not _has_words(next(g for g in m.groups() if g is not None)) else m.group(0), clause)
    return bool(clause) and not _has_words(rest) and "$" not in rest.replace("\\$", "") and any(c.isalnum() for c in clause)


@lru_cache(maxsize=8192)
def _first_math(clause: str, timed: bool) -> str | None:
    """math-verify's first complete answer in a clause that follows a label (see the module docstring), as it
    writes it (``18``, ``\\frac{3}{4}``); ``None`` when it finds none or fails."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse  # deferred: math-verify loads sympy (~1 s)

    anchored = (LatexExtractionConfig(try_extract_without_anchor=False, boxed_match_priority=-1),
                ExprExtractionConfig(try_extract_without_anchor=False))
    # One label, so its anchored patterns match once; math-verify reads neither 1{,}000 nor \$18 as numbers.
    text = "Answer: " + clause[:MAX_SYMBOLIC_CHARS].replace("{,}", ",").replace("\\$", "$")
    try:
        found = parse(text, anchored, parsing_timeout=VERIFY_TIMEOUT_S if timed else None)
    except BaseException as exc:  # noqa: BLE001 — math-verify's TimeoutException is not an Exception subclass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.debug("math-verify could not read %r: %s", clause, exc)
        return None
    written = [x for x in found if isinstance(x, str) and x.strip()]
    return written[-1].strip() if written else None


def _answer_in(clause: str, bare: bool = False) -> str | None:
    """The answer a clause holds: the clause itself when it is all mathematics; LaTeX that starts the clause,
    up to the first word (``3\\sqrt{13} units``); else math-verify's first answer in it. A labelled clause where
    math-verify finds none is kept as text; a bare one must start with mathematics."""
    clause = _trim(re.sub(r"\s*I hope it is correct\.?$", "", clause))
    if not clause:
        return None
    if _is_math(clause):
        return _strip_math(clause) or None
    if _BOX_COMMAND.search(clause):
        return None
    if bare and not _MATH_START.match(clause):
        return None
    lead = _trim(clause[: _first_word(clause)])
    if "\\" in lead.replace("\\$", "") and _is_math(lead):  # math-verify reads no LaTeX outside `$`: 3\sqrt{13} would be 3
        return _strip_math(lead)
    found = _first_math(clause, _in_main_thread())
    return found if found is not None or bare else clause


def extract_answer(text: str | None, delimiters: tuple[str, ...] = ANSWER_DELIMITERS) -> str | None:
    """The final answer in ``text`` as written (a clause with words in it: as math-verify reads it, ``1,000 dollars``
    giving ``1000``), not canonicalised; ``None`` when there is none.

    Follows the module docstring's rule order: the segment after the last delimiter in ``delimiters``, then its
    last complete box, else the first answer after its last label, else a bare answer at the start of the segment.
    Never raises; a non-string or blank text gives ``None``.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    segment = answer_segment(text, delimiters)
    region = text if segment is None else segment
    boxes = boxed_contents(region)
    if boxes:
        answer = boxes[-1]
        while (inner := boxed_contents(answer)) and re.fullmatch(r"\\(?:boxed|fbox)\s*\{.*\}", answer, re.DOTALL):
            answer = inner[0]  # \boxed{\boxed{8}} → 8
        return answer
    labels = list(_ANSWER_LABEL.finditer(region))
    if labels:
        return _answer_in(_clause(region, labels[-1].end()))
    if segment is not None:
        return _answer_in(_clause(region), bare=True)
    clause = _clause(text)
    if clause != _trim(text) or not _is_math(clause):
        return None
    return _strip_math(clause) or None


_CHOICE_IN_BOX = re.compile(r"^\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Z])\)?\s*\}?\s*$")
_CHOICE_LABEL = re.compile(_ANSWER_LABEL.pattern + r"|\b(?:correct\s+)?(?:option|choice)\s+is\b\s*:?", re.IGNORECASE | re.MULTILINE)
# The letter a clause starts with: "(C)", "C)", "C.", "**C**", "$\text{C}$", "option C"; a bare lower-case letter only
# when punctuation or the end follows ("the answer is a trap" is no choice).
_LEADING_CHOICE = re.compile(r"[\s*$]*(?:\\text(?:bf)?\{\s*)?(?:(?i:option|choice)\s+)?"
                             r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z])|([a-z])(?=[).,:;}*$]|\s*$))")


def _leading_choice(clause: str, letters: str, bare: bool = False) -> str | None:
    """The letter ``clause`` starts with, when it is one of ``letters``; unlabelled (``bare``), a letter followed by
    a word is prose ("A lot of ...")."""
    m = _LEADING_CHOICE.match(clause)
    if m is None or (bare and m.group(2) and re.match(r"\s+[A-Za-z]", clause[m.end():])):
        return None
    letter = next(g for g in m.groups() if g).upper()
    return letter if letter in letters else None


def extract_choice(text: str | None, letters: str = "ABCD", delimiters: tuple[str, ...] = ANSWER_DELIMITERS) -> str | None:
    """The multiple-choice letter (GPQA style ``A``-``D``) a text commits to, upper-case, or ``None``.

    Same rule order as :func:`extract_answer`: the segment after the last delimiter; its last boxed letter
    (``\\boxed{C}``, ``\\boxed{\\text{(C)}}``); else the letter that starts the clause after the last label
    (``Answer: C``, ``answer is (c)``, ``**Answer:** C)``, ``the correct option is C``), stopping at the letter;
    else a segment that starts with a letter after a delimiter, or a text that is nothing but a letter. A letter
    outside ``letters`` is no answer (never a fall-back to an earlier one); a lower-case letter followed by a
    word is prose ("the answer is a trap"). Never raises.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    segment = answer_segment(text, delimiters)
    region = text if segment is None else segment
    for box in reversed(boxed_contents(region)):
        m = _CHOICE_IN_BOX.match(box.upper() if len(box) <= 3 else box)
        if m and m.group(1) in letters:
            return m.group(1)
    labels = list(_CHOICE_LABEL.finditer(region))
    if labels:
        return _leading_choice(_clause(region, labels[-1].end()), letters)
    if segment is not None:
        return _leading_choice(_clause(region), letters, bare=True)
    bare = re.fullmatch(r"\s*\(?([A-Za-z])\)?[.\s]*", text)
    return bare.group(1).upper() if bare and bare.group(1).upper() in letters else None


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
    s = re.sub(r"\\[dt]frac", r"\\frac", s).replace("{,}", ",")  # 1{,}000 is LaTeX's thousands separator
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
