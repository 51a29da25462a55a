"""Synthetic verifiable problems with exact answers and a programmatic step checker (a stand-in PRM).

Two tasks, each deterministic in ``(seed, index, difficulty)`` so that a longer ``limit`` extends a shorter one:

    synthetic:arith:K   "What is ((7 + 5) * 3) - 4?"  K operations on 2-9, left to right (default K = 1).
                        The chain of values 7 → 12 → 36 → 32 is what the step checker verifies.
    synthetic:count:K   'How many times does the letter "r" appear in total in the words "strawberry", "carrot"?'
                        K words (default K = 1); per-word counts and their sums are verified.
    synthetic           = synthetic:arith:1

The questions are plain arithmetic notation on purpose: the embedded SmolLM2-135M-Instruct solves "What is 7 + 5?"
far more often than "Start with 7. Add 5." (which it misreads as a remainder). Calibration (greedy, chat template,
question as the user turn, last integer of the reply, 24 problems, seed 0): arith:1 58% (54% with 64 new tokens;
~56 tokens generated), arith:2 4%; count:1 42%, below answering "1" every time (50%), count:2 0%. So arith:1
is the easy setting with signal for small models; count and K >= 2 are for stronger ones.

:func:`check_steps` scores the steps of a solution the way a process reward model would (usable as the
programmatic verifier ``benchmarks.data.synthetic:check_steps``). A step's *claims* are read from its text:

    equations   "12 * 3 = 36" (also ×, x, −, ÷; chained "7 + 5 = 12 * 3 = 36")  true arithmetic, result on track
    answers     "Answer: 32", "\\boxed{32}", "the answer is 32", "final number is 32"  must equal the answer
    values      "gives 36", "results in 36", "equals 36", "is 36", "we get 36"       result on track
    word counts "strawberry has 3" or "3 times in strawberry" (count task)          must equal the word's count

"On track" means: arith, a value of the chain at or after the last value confirmed so far (skipping steps is
fine, going back is not); count, one of the per-word counts or a sum of some of them. A step scores 1.0 when
it makes claims and all hold, 0.0 when one fails, and inherits the previous step's score when it makes none
(prose after a checked step neither helps nor hurts). Steps before the first claim score 0.5 (nothing to
verify yet), so under ``last`` aggregation a solution ending on a verified answer (1.0) ranks above one that
never commits to a number (0.5), which ranks above a wrong one (0.0): SmolLM2 often rambles without a number.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from itertools import combinations

from benchmarks.data.problem import Problem
from engine.answers import ANSWER_DELIMITERS, answer_segment, extract_answer
from engine.errors import TTScaleError

TASKS = ("arith", "count")
DEFAULT_COUNT = 100
MAX_DIFFICULTY = {"arith": 12, "count": 6}
UNCHECKED = 0.5  # score of steps before the first checkable claim

WORDS = ("strawberry", "banana", "apple", "cherry", "carrot", "grasshopper", "balloon", "coffee", "pepper", "mississippi",
         "committee", "success", "address", "bottle", "kitten", "summer", "butter", "rabbit", "parrot", "tomato",
         "potato", "window", "garden", "orange", "lemon", "puzzle", "yellow", "hello", "little", "middle",
         "dinner", "bubble", "cookie", "broccoli", "giraffe", "happy", "hippopotamus", "pizza", "zebra", "river",
         "teeth", "sheep", "street", "bookkeeper", "assessment", "raspberry", "accommodate", "necessary",
         "pineapple", "elephant")

# Never "letter", "word" or "total": they occur in the question and in answers, and would read as word-count claims.
_SYM = {"add": "+", "sub": "-", "mul": "*"}


# ------------------------------------------------------------------------------------------ generation
def parse_name(name: str) -> tuple[str, int]:
    """``synthetic[:task[:difficulty]]`` as ``(task, difficulty)``; refuses other tasks and difficulties out of range."""
    parts = name.split(":")
    if parts[0] != "synthetic" or len(parts) > 3:
        raise TTScaleError(f"--dataset {name!r}: write synthetic, synthetic:arith:K (K operations) or synthetic:count:K (K words)")
    task = parts[1] if len(parts) > 1 and parts[1] else "arith"
    if task not in TASKS:
        raise TTScaleError(f"--dataset {name!r}: unknown synthetic task {task!r}; use one of {', '.join(TASKS)}")
    try:
        difficulty = int(parts[2]) if len(parts) > 2 else 1
    except ValueError:
        raise TTScaleError(f"--dataset {name!r}: the difficulty {parts[2]!r} must be an integer") from None
    if not 1 <= difficulty <= MAX_DIFFICULTY[task]:
        raise TTScaleError(f"--dataset {name!r}: difficulty {difficulty} is out of range; use 1 to {MAX_DIFFICULTY[task]} for {task}")
    return task, difficulty


def _rng(task: str, difficulty: int, seed: int, index: int) -> random.Random:
    return random.Random(f"ttscale-synthetic:{task}:{difficulty}:{seed}:{index}")


def arith_question(start: int, ops: list[tuple[str, int]]) -> str:
    """``What is ((start op a) op b) ...?`` for ops like ``[("add", 5), ("mul", 3)]``."""
    expr = str(start)
    for i, (op, a) in enumerate(ops):
        expr = f"{expr} {_SYM[op]} {a}" if i == 0 else f"({expr}) {_SYM[op]} {a}"
    return f"What is {expr}?"


def arithmetic_problem(index: int, steps: int, seed: int = 0) -> Problem:
    """Problem ``index`` of the arithmetic task: ``steps`` operations (add 1-9, subtract, multiply by 2-3), values stay > 0."""
    rng = _rng("arith", steps, seed, index)
    value = rng.randint(2, 9)
    values, ops = [value], []
    for _ in range(steps):
        kind = rng.choice(("add", "sub", "mul"))
        if kind == "mul" and value <= 30:
            a = rng.randint(2, 3)
            value *= a
        elif kind == "sub" and value > 1:
            a = rng.randint(1, min(9, value - 1))
            value -= a
        else:
            kind, a = "add", rng.randint(1, 9)
            value += a
        ops.append((kind, a))
        values.append(value)
    return Problem(f"arith{steps}-{index}", arith_question(values[0], ops), str(value), "math", (),
                   {"task": "arith", "difficulty": steps, "values": values, "ops": [list(o) for o in ops]})


def count_question(letter: str, words: list[str]) -> str:
    """The counting question for one or several words."""
    if len(words) == 1:
        return f'How many times does the letter "{letter}" appear in the word "{words[0]}"?'
    quoted = ", ".join(f'"{w}"' for w in words)
    return f'How many times does the letter "{letter}" appear in total in the words {quoted}?'


def counting_problem(index: int, n_words: int, seed: int = 0) -> Problem:
    """Problem ``index`` of the letter-counting task over ``n_words`` distinct words; the letter occurs at least once,
    and the answer is drawn uniformly from the totals the words allow, so small answers do not dominate."""
    rng = _rng("count", n_words, seed, index)
    words = rng.sample(sorted(set(WORDS)), n_words)
    totals = {c: sum(w.count(c) for w in words) for c in sorted(set("".join(words)))}
    # Draw the answer first, then a letter with that total: most letters occur once, and a task whose answer is
    # usually 1 rewards a model that always says 1 (SmolLM2 nearly does).
    total = rng.choice(sorted(set(totals.values())))
    letter = rng.choice([c for c, t in totals.items() if t == total])
    return Problem(f"count{n_words}-{index}", count_question(letter, words), str(total), "math", (),
                   {"task": "count", "difficulty": n_words, "words": words, "letter": letter,
                    "counts": [w.count(letter) for w in words]})


def load_synthetic(name: str = "synthetic", limit: int | None = None, seed: int = 0) -> list[Problem]:
    """``limit`` problems (default 100) of ``synthetic[:task[:difficulty]]``, deterministic in ``seed``."""
    task, difficulty = parse_name(name)
    make = arithmetic_problem if task == "arith" else counting_problem
    return [make(i, difficulty, seed) for i in range(limit or DEFAULT_COUNT)]


# ----------------------------------------------------------------------------------- question parsing
_ARITH_Q = re.compile(r"^What is ([0-9+\-* ()]+)\?$")
_COUNT_Q = re.compile(r'^How many times does the letter "([a-z])" appear in (?:the word|total in the words) (.+)\?$')


def _parse_question(question: str) -> dict:
    q = question.strip()
    m = _ARITH_Q.match(q)
    if m:
        tokens = re.findall(r"\d+|[+\-*]", m.group(1))
        if len(tokens) >= 3 and len(tokens) % 2 == 1:
            values, ops = [int(tokens[0])], []
            for sym, a in zip(tokens[1::2], tokens[2::2]):
                kind = {v: k for k, v in _SYM.items()}[sym]
                ops.append((kind, int(a)))
                values.append(_OPS[sym](values[-1], int(a)))
            if arith_question(values[0], ops) == q:
                return {"task": "arith", "values": values}
    m = _COUNT_Q.match(q)
    if m:
        letter, words = m.group(1), re.findall(r'"([a-z]+)"', m.group(2))
        if words and count_question(letter, words) == q:
            counts = [w.count(letter) for w in words]
            sums = {sum(c) for r in range(1, len(counts) + 1) for c in combinations(counts, r)}
            return {"task": "count", "words": words, "counts": counts, "sums": sums, "total": sum(counts)}
    raise TTScaleError(f"check_steps: the question {question[:80]!r} is not a synthetic arith or count question; "
                       "use this verifier only with --dataset synthetic:...")


def solution_steps(question: str) -> list[str]:
    """A correct step-by-step solution of a synthetic question (one claim per step, last step ``Answer: N``)."""
    info = _parse_question(question)
    if info["task"] == "arith":
        v = info["values"]
        ops = re.findall(r"[+\-*] \d+", question)
        return [f"{v[i]} {ops[i]} = {v[i + 1]}" for i in range(len(ops))] + [f"Answer: {v[-1]}"]
    steps = [f'"{w}" has {c}.' for w, c in zip(info["words"], info["counts"])]
    if len(info["counts"]) > 1:
        steps.append(" + ".join(map(str, info["counts"])) + f" = {info['total']}")
    return steps + [f"Answer: {info['total']}"]


# ------------------------------------------------------------------------------------- claim reading
_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_AST_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_NUM = r"(-?\d+(?:\.\d+)?)"
_ANSWER = re.compile(r"\\boxed\{\s*" + _NUM + r"\s*\}|(?:answer|final (?:number|result|value|total)|total)\s*(?:is|:|=)?\s*:?\s*[*$]*\s*"
                     + _NUM + r"\b(?!\s*[+\-*/=])", re.IGNORECASE)  # "the answer is 8 - 1 = 7" is an equation, not "8"
_VALUE = re.compile(r"\b(?:gives|give|get|gets|got|becomes|become|equals|equal to|results in|makes|leaves|yields|is now|is)\s+"
                    r"(?:us\s+|me\s+)?" + _NUM + r"\b(?!\s*[+\-*/])", re.IGNORECASE)
_EXPR_TAIL = re.compile(r"[\d\s+\-*/().]*\d[\d\s)]*$")
_LEAD_NUM = re.compile(r"^\s*" + _NUM)


def _normalise(text: str) -> str:
    text = text.replace("×", "*").replace("·", "*").replace("−", "-").replace("–", "-").replace("÷", "/")
    text = re.sub(r"(?<=\d)\s*[xX]\s*(?=\d)", " * ", text)
    return re.sub(r"(?<=\d)(?:,|\{,\})(?=\d{3}\b)", "", text)  # 1,000 and LaTeX's 1{,}000 → 1000


def _evaluate(expr: str) -> float | None:
    """Value of an arithmetic expression of numbers, + - * / and parentheses; None if it is not one."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
            right = ev(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ZeroDivisionError
            return _AST_OPS[type(node.op)](ev(node.left), right)
        raise ValueError

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError, TypeError):
        return None


def _lhs_value(before: str) -> float | None:
    """Value of the longest arithmetic expression (with an operator) that ends the text before an "=" sign."""
    tail = _EXPR_TAIL.search(before)
    if not tail:
        return None
    tokens = re.findall(r"\d+(?:\.\d+)?|[+\-*/()]", tail.group(0))
    for i in range(len(tokens)):  # "1. 7 + 5" or "(7 + 5": drop leading tokens until it parses
        candidate = " ".join(tokens[i:])
        if re.search(r"\d\s*\)*\s*[+\-*/]\s*\(*\s*\d", candidate):
            value = _evaluate(candidate)
            if value is not None:
                return value
    return None


def _claims(step: str, words: list[str]) -> list[tuple[str, object]]:
    """Claims of one step in text order: ("eq", (lhs value or None, rhs)), ("answer", n), ("value", n), ("word", (w, n))."""
    text = _normalise(step)
    found: list[tuple[int, str, object]] = []
    taken: set[int] = set()  # start offsets of numbers already read as part of a claim

    for m in _ANSWER.finditer(text):
        num = m.group(1) or m.group(2)
        start = m.start(1) if m.group(1) else m.start(2)
        found.append((start, "answer", float(num)))
        taken.add(start)
    pieces = text.split("=")
    offset = 0
    for k in range(1, len(pieces)):
        offset += len(pieces[k - 1]) + 1
        lead = _LEAD_NUM.match(pieces[k])
        if not lead:
            continue
        start = offset + lead.start(1)
        if start in taken:
            continue
        found.append((start, "eq", (_lhs_value(pieces[k - 1]), float(lead.group(1)))))
        taken.add(start)
    for m in _VALUE.finditer(text):
        if m.start(1) not in taken:
            found.append((m.start(1), "value", float(m.group(1))))
            taken.add(m.start(1))
    lowered = text.lower()
    for w in words:  # "3 times in banana" first, so that its number is not read as the count of a word before it
        for m in re.finditer(r"(\d+)\s+times?\s+in\s+(?:the\s+word\s+)?\W?" + w + r"\b", lowered):
            if m.start(1) not in taken:
                found.append((m.start(1), "word", (w, int(m.group(1)))))
                taken.add(m.start(1))
    for w in words:  # "banana has 3"
        others = [o for o in words if o != w]
        for m in re.finditer(r"\b" + w + r"\b\W{0,2}([^0-9]{0,40}?)(\d+)", lowered):
            if m.start(2) not in taken and not any(re.search(r"\b" + o + r"\b", m.group(1)) for o in others):
                found.append((m.start(2), "word", (w, int(m.group(2)))))
                taken.add(m.start(2))
    return [(kind, value) for _, kind, value in sorted(found, key=lambda f: f[0])]


def check_steps(question: str, steps: list[str]) -> list[float]:
    """A score in {0.0, 0.5, 1.0} per step of a solution to a synthetic question (rules in the module docstring).

    Refuses a question that is not one of this module's (it cannot be verified) and steps that are not strings.
    """
    info = _parse_question(question)
    words = info.get("words", [])
    pointer = 0  # arith: index of the last confirmed chain value
    scores: list[float] = []
    for step in steps:
        if not isinstance(step, str):
            raise TTScaleError(f"check_steps: each step must be a string, got {type(step).__name__}")
        claims = _claims(step, words)
        if not claims:
            scores.append(scores[-1] if scores else UNCHECKED)
            continue
        ok = True
        for kind, value in claims:
            if kind == "eq":
                lhs, rhs = value
                if lhs is not None and abs(lhs - rhs) > 1e-9:
                    ok = False
                    continue
                value = rhs
            if kind == "word":
                w, n = value
                ok &= info["counts"][info["words"].index(w)] == n
            elif kind == "answer":
                target = info["values"][-1] if info["task"] == "arith" else info["total"]
                ok &= value == target
                if info["task"] == "arith" and value == target:
                    pointer = len(info["values"]) - 1
            elif info["task"] == "arith":
                later = [j for j in range(pointer, len(info["values"])) if info["values"][j] == value]
                if later:
                    pointer = later[0]
                else:
                    ok = False
            else:
                ok &= value in info["sums"] or value in info["counts"]
        scores.append(1.0 if ok else 0.0)
    return scores


# ------------------------------------------------------------------------------------------------ grading
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def read_answer(text: str | None, delimiters: tuple[str, ...] | None = None) -> str | None:
    """The number a reply to a synthetic question commits to, or None: the last number of the answer that
    ``engine.answers.extract_answer`` reads (its one rule order: the segment after the last answer delimiter, its
    last box, else the first answer after its last label, else a bare answer starting the segment).

    With an answer delimiter in the reply that is all: an empty or unlabelled answer after thinking is no answer,
    even when the thinking holds the result. Only a reply without any delimiter (plain chat, no thinking format)
    falls back to its last number, the calibration's "last integer of the reply".

    Synthetic answers are integers, so the runner grades them by number, not with math-verify: math-verify would
    evaluate a restated question ("Final Answer: 2 + 6") and count it as the answer 8. Never raises.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    delimiters = tuple(delimiters or ()) + ANSWER_DELIMITERS
    answer = extract_answer(text, delimiters)
    source = answer if answer is not None or answer_segment(text, delimiters) is not None else text
    numbers = _NUMBER.findall(_normalise(source)) if source else []
    if not numbers:
        return None
    value = float(numbers[-1])
    return str(int(value)) if value.is_integer() else numbers[-1]
