"""Grader benchmark: does a grader read the gold answer back out of model-like text, and only when it is the answer?

    python -m benchmarks.grading.extraction [--math500 PATH] [--per-template N] [--seed S] [--out FILE] [--json]

Corpus. Gold answers from three sources: :data:`BUILTIN_ANSWERS` (GSM8K-style integers, decimals, money, negatives,
thousands), the synthetic tasks' answers (``benchmarks/data/synthetic.py``, both tasks, every difficulty) and, with
``--math500``, MATH-500's ``answer`` field. Each template of :data:`TEMPLATES` renders a gold answer into text of
the kind a model writes; per template, up to ``--per-template`` of the golds it applies to are sampled (fixed seed).

    positive   the text commits to the gold answer: a grader should say "correct"   → true-positive rate (TP)
    negative   the text commits to another answer, or to none, while the gold stands elsewhere in it (in the
               thinking, in a later sentence) or nowhere: a grader should say "wrong"  → false-positive rate (FP)

Graders, side by side on the same cases (every gold parsed the same way, as ``$\\boxed{gold}$``):

    ours          is_equivalent(gold, extract_answer(text))                      engine/answers.py
    math-verify   verify(parse(gold), parse(text)): math-verify alone on the raw text, its default extraction
    s1            s1's extraction (:func:`s1_extract`: the last ``\\boxed{}`` after ``<|im_start|>answer``, else the
                  text after ``Answer:``), compared with ``is_equivalent`` so that only the extraction differs
                  (s1 itself compares AIME answers as strings and asks GPT-4o-mini for MATH)

Goal: ours >= 99.5% TP and <= 0.1% FP on every template (:data:`GOAL`). The table shows every rate, ours' misses
and, for a template ours misses the goal on, why (:data:`NOTES`); it ends with one JSON line. No model, no torch.
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version

from benchmarks import options
from benchmarks.cli import emit, run_module
from benchmarks.data.synthetic import MAX_DIFFICULTY, TASKS, load_synthetic
from engine.answers import VERIFY_TIMEOUT_S, canonicalize, extract_answer, is_equivalent
from engine.errors import TTScaleError
from engine.jsonl import read_jsonl

GOAL = {"tp_min": 0.995, "fp_max": 0.001}
GRADERS = ("ours", "math_verify", "s1")

# GSM8K-style answers: what the grade-school word problems ask for (counts, money, rates, differences).
BUILTIN_ANSWERS = (
    "18", "3", "70000", "6", "15", "20", "10", "5", "460", "64", "260", "160", "120", "48", "1050", "624", "36", "8",
    "25", "1", "0", "12", "2", "100", "4", "45", "1200", "7", "240", "9", "75", "14", "2500", "30", "16", "11", "80",
    "57500", "1000000", "13", "-3", "-12", "0.5", "2.25", "17.5", "3.75", "12.5", "0.25", "1.5", "4.8", "18.9", "99.99",
    "350", "3000", "12000", "142", "1875", "23", "5600", "96",
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
S1_THINK = "<|im_start|>think\nLet me work through this carefully.\n<|im_start|>answer\n"


# ─── templates ─────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Case:
    """One graded text: ``committed`` is the answer the text commits to (the gold, as rendered, for a positive;
    another answer or ``None`` for a negative)."""

    template: str
    positive: bool
    gold: str
    text: str
    committed: str | None


@dataclass(frozen=True)
class Template:
    """A way of writing an answer: ``render(gold, other)`` gives ``(text, committed)``; ``applies(gold)`` says
    which golds it can write (units only for numbers, ``\\dfrac`` only for fractions)."""

    name: str
    positive: bool
    render: Callable[[str, str], tuple[str, str | None]]
    applies: Callable[[str], bool] = lambda gold: True


def is_number(gold: str) -> bool:
    """Whether ``gold`` is a plain decimal number (``18``, ``-3``, ``2.25``): the golds unit and money templates write."""
    return _NUMBER.fullmatch(gold) is not None


def _big_integer(gold: str) -> bool:
    return re.fullmatch(r"-?\d+", gold) is not None and abs(int(gold)) >= 1000


def _thousands(gold: str, sep: str = ",") -> str:
    return f"{int(gold):,}".replace(",", sep)


def _plus(gold: str, k: int) -> str:
    return str(Decimal(gold) + k)


def _off_by_one(gold: str) -> tuple[str, str]:
    wrong = _plus(gold, 1 if int(Decimal(gold) * 100) % 2 == 0 else -1)
    return f"{S1_THINK}Final Answer: {wrong}", wrong


def _dfrac(gold: str) -> tuple[str, str]:
    written = gold.replace("\\frac", "\\dfrac")
    return f"{S1_THINK}Final Answer: ${written}$", written


TEMPLATES = (
    # positives: the text commits to the gold
    Template("boxed", True, lambda g, o: (f"{S1_THINK}Answer: so the result is $\\boxed{{{g}}}$.", g)),
    Template("boxed-closing-line", True, lambda g, o: (
        f"## Step 1: Set up.\n\nWe get {o} first, then correct it.\n\nTherefore, the final answer is: $\\boxed{{{g}}}$. "
        "I hope it is correct.", g)),
    Template("final-answer", True, lambda g, o: (f"{S1_THINK}Final Answer: {g}", g)),
    Template("final-answer-dollars-math", True, lambda g, o: (f"{S1_THINK}Final Answer: ${g}$", g)),
    Template("the-answer-is", True, lambda g, o: (f"{S1_THINK}The answer is {g}.", g)),
    Template("paren-math", True, lambda g, o: (f"{S1_THINK}The answer is \\({g}\\).", g)),
    Template("display-math", True, lambda g, o: (f"{S1_THINK}Final Answer:\n\\[\n{g}\n\\]", g)),
    Template("dfrac", True, lambda g, o: _dfrac(g), lambda g: "\\frac" in g),
    Template("markdown-bold", True, lambda g, o: (f"{S1_THINK}**Final Answer:** {g}", g)),
    Template("trailing-sentence", True, lambda g, o: (f"{S1_THINK}Final Answer: {g}. That is {o} less than last week.", g)),
    Template("units", True, lambda g, o: (f"{S1_THINK}Final Answer: {g} eggs", g), is_number),
    Template("dollar-sign", True, lambda g, o: (f"{S1_THINK}Final Answer: ${g}", g), lambda g: is_number(g) and not g.startswith("-")),
    Template("dollars-word", True, lambda g, o: (f"{S1_THINK}Final Answer: {g} dollars.", g), is_number),
    Template("dollars-sentence", True, lambda g, o: (f"{S1_THINK}Final Answer: She makes {g} dollars every day.", g), is_number),
    Template("thousands-comma", True, lambda g, o: (f"{S1_THINK}Final Answer: {_thousands(g)}", _thousands(g)), _big_integer),
    Template("thousands-latex", True, lambda g, o: (f"{S1_THINK}Final Answer: ${_thousands(g, '{,}')}$", _thousands(g, "{,}")),
             _big_integer),
    Template("bare-after-delimiter", True, lambda g, o: (f"{S1_THINK}{g}", g)),
    Template("after-think-tag", True, lambda g, o: (f"Okay, {o} does not fit the last condition.\n</think>\n\nThe answer is ${g}$.", g)),
    # negatives: another answer (or none) is committed to, and the gold stands elsewhere
    Template("wrong-label-gold-later", False, lambda g, o: (f"{S1_THINK}The answer is {o}. She sold {g} eggs in total.", o)),
    Template("wrong-final-gold-later", False, lambda g, o: (f"{S1_THINK}Final Answer: {o}. I first wrote {g}, but that was a slip.", o)),
    Template("off-by-one", False, lambda g, o: _off_by_one(g), is_number),
    Template("gold-in-thinking", False, lambda g, o: (
        f"<|im_start|>think\nSo the answer is $\\boxed{{{g}}}$. Wait, no.\n<|im_start|>answer\nFinal Answer: {o}", o)),
    Template("gold-in-think-tags", False, lambda g, o: (f"At first I get \\boxed{{{g}}}.\n</think>\n\nFinal Answer: {o}", o)),
    Template("empty-answer", False, lambda g, o: (f"<|im_start|>think\nThe total is {g}.\n<|im_start|>answer\n", None)),
    Template("empty-final-answer", False, lambda g, o: (f"<|im_start|>think\nThe total is {g}.\n<|im_start|>answer\nFinal Answer:", None)),
    Template("no-answer", False, lambda g, o: (f"Let me try: maybe {g}, or maybe not. I need more time to check.", None)),
)

# Why a template misses the goal for ours, where it does (printed and reported with it); empty when none does.
NOTES: dict[str, str] = {}


def other_answer(gold: str, pool: list[str], rng: random.Random) -> str:
    """A wrong answer to stand beside ``gold``: a number a few units away for a numeric gold, else another answer of
    ``pool`` that is not equivalent to it in either order (``is_equivalent``). Refuses a pool with no such answer."""
    if is_number(gold):
        return _plus(gold, rng.randint(2, 9))
    candidates = [a for a in pool if canonicalize(a) != canonicalize(gold)]
    rng.shuffle(candidates)
    for cand in candidates[:50]:
        if not is_equivalent(gold, cand) and not is_equivalent(cand, gold):
            return cand
    raise TTScaleError(f"no answer in the corpus differs from {gold!r}; give a corpus with more than one distinct answer")


def build_cases(golds: list[str], per_template: int, seed: int, templates: tuple[Template, ...] = TEMPLATES) -> list[Case]:
    """Up to ``per_template`` cases per template: the golds it applies to, sampled without replacement with a seed
    fixed per template, each rendered with a wrong answer from :func:`other_answer`. Refuses ``per_template < 1``."""
    if per_template < 1:
        raise TTScaleError(f"per_template must be >= 1, got {per_template}")
    pool = list(dict.fromkeys(golds))
    cases = []
    for t in templates:
        rng = random.Random(f"ttscale-grading:{seed}:{t.name}")
        usable = [g for g in pool if t.applies(g)]
        for gold in rng.sample(usable, min(per_template, len(usable))):
            text, committed = t.render(gold, other_answer(gold, pool, rng))
            cases.append(Case(t.name, t.positive, gold, text, committed))
    return cases


# ─── corpus ────────────────────────────────────────────────────────────────────────────────────────────────────


def synthetic_answers(per_setting: int = 40) -> list[str]:
    """The distinct answers of the synthetic tasks: ``per_setting`` problems of every task and difficulty."""
    found = []
    for task in TASKS:
        for k in range(1, MAX_DIFFICULTY[task] + 1):
            found += [p.answer for p in load_synthetic(f"synthetic:{task}:{k}", limit=per_setting)]
    return list(dict.fromkeys(found))


def math500_answers(path: str) -> list[str]:
    """The ``answer`` field of every row of a MATH-500 JSONL file. Refuses a missing file and rows without ``answer``."""
    rows = read_jsonl(path, what="--math500")
    missing = [i for i, r in enumerate(rows) if not isinstance(r.get("answer"), str) or not r["answer"].strip()]
    if missing:
        raise TTScaleError(f"--math500 {path}: row {missing[0] + 1} has no text 'answer' field; give MATH-500's JSONL "
                           "(problem, solution, answer, ...)")
    return [r["answer"] for r in rows]


# ─── graders ───────────────────────────────────────────────────────────────────────────────────────────────────


def _s1_last_boxed(s: str) -> str | None:
    """s1's ``last_boxed_only_string``: the last ``\\boxed ...`` (to the next ``$``) or ``\\boxed{...}`` / ``\\fbox{...}``."""
    if "\\boxed " in s:
        return "\\boxed " + s.split("\\boxed ")[-1].split("$")[0]
    idx = s.rfind("\\boxed")
    if idx < 0:
        idx = s.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(s)):
        depth += (s[i] == "{") - (s[i] == "}")
        if s[i] == "}" and depth == 0:
            return s[idx : i + 1]
    return None


def s1_extract(text: str) -> str:
    """s1's answer extraction (simplescaling/s1, ``eval/lm-evaluation-harness/lm_eval/tasks/openai_math/utils.py``):
    the text after the last ``<|im_start|>answer\\n`` (else after the last ``<|im_start|>``, first line dropped); in
    it the last box, unwrapped; else everything after the *first* ``Answer:`` (``re.findall`` of ``Answer\\s*:\\s*(.*)``
    with ``re.DOTALL`` matches once, to the end); else the whole segment. ``</think>`` is no delimiter to s1."""
    a = text
    if "<|im_start|>answer\n" in a:
        a = a.split("<|im_start|>answer\n")[-1]
    elif "<|im_start|>" in a:
        a = a.split("<|im_start|>")[-1]
        if "\n" in a:
            a = "\n".join(a.split("\n")[1:])
    box = _s1_last_boxed(a)
    if box is not None:
        if box.startswith("\\boxed "):
            return box[len("\\boxed "):]
        return box[len("\\boxed{"):-1] if box.startswith("\\boxed{") else box  # s1 asserts here on an \fbox
    matches = re.findall(r"(?i)Answer\s*:\s*(.*)", a, re.DOTALL)
    return matches[-1] if matches else a


def _math_verify_alone(gold: str, text: str) -> bool:
    """``verify(parse(gold), parse(text))`` with math-verify's default extraction on the raw text; False on any failure."""
    from math_verify import parse, verify  # deferred: math-verify loads sympy (~1 s)

    try:
        g = parse(f"$\\boxed{{{gold}}}$", parsing_timeout=VERIFY_TIMEOUT_S)
        p = parse(text, parsing_timeout=VERIFY_TIMEOUT_S)
        return bool(g and p and verify(g, p, timeout_seconds=VERIFY_TIMEOUT_S))
    except BaseException as exc:  # noqa: BLE001 — math-verify's TimeoutException is not an Exception subclass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return False


def grade(case: Case) -> dict[str, bool]:
    """Each grader's verdict on one case: whether it judges the text to answer ``case.gold``."""
    return {"ours": is_equivalent(case.gold, extract_answer(case.text)),
            "math_verify": _math_verify_alone(case.gold, case.text),
            "s1": is_equivalent(case.gold, s1_extract(case.text))}


# ─── run ───────────────────────────────────────────────────────────────────────────────────────────────────────


Options = options.GradingOptions
SPEC = options.GRADING.spec


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("math-verify", "latex2sympy2_extended", "sympy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def run(options: Options, golds: list[str] | None = None) -> dict:
    """Build the corpus, grade every case with every grader, and return the result (the JSON line's object).

    ``golds`` replaces the corpus (tests pass a small one); otherwise it is :data:`BUILTIN_ANSWERS`, the synthetic
    answers and, when ``options.math500`` is set, MATH-500's answers. Refuses a MATH-500 path that is not a file.
    """
    sources = {}
    if golds is None:
        synthetic = synthetic_answers()
        golds = list(BUILTIN_ANSWERS) + synthetic
        sources = {"builtin": len(BUILTIN_ANSWERS), "synthetic": len(synthetic)}
        if options.math500:
            math500 = math500_answers(options.math500)
            golds += math500
            sources["math500"] = len(math500)
    else:
        sources = {"given": len(golds)}
    cases = build_cases(golds, options.per_template, options.seed)
    templates, misses = {}, {}
    for t in TEMPLATES:
        mine = [c for c in cases if c.template == t.name]
        if not mine:
            continue
        verdicts = [grade(c) for c in mine]
        rate = {g: sum(v[g] for v in verdicts) / len(mine) for g in GRADERS}
        met = rate["ours"] >= GOAL["tp_min"] if t.positive else rate["ours"] <= GOAL["fp_max"]
        templates[t.name] = {"kind": "positive" if t.positive else "negative", "n": len(mine), "rate": rate, "goal_met": met}
        wrong = [c for c, v in zip(mine, verdicts) if v["ours"] != t.positive]
        if wrong:
            misses[t.name] = [{"gold": c.gold, "text": c.text, "extracted": extract_answer(c.text)} for c in wrong[:3]]
    summary = {}
    for kind in ("positive", "negative"):
        rows = [r for r in templates.values() if r["kind"] == kind]
        n = sum(r["n"] for r in rows)
        summary[kind] = {"n": n, **{g: (sum(r["rate"][g] * r["n"] for r in rows) / n if n else None) for g in GRADERS}}
    failed = [name for name, r in templates.items() if not r["goal_met"]]
    config = {"math500": options.math500, "per_template": options.per_template, "seed": options.seed, "sources": sources,
              "distinct_golds": len(set(golds)), "cases": len(cases)}
    figures = {"templates": templates, "summary": summary, "goal": GOAL, "goal_met": not failed, "goal_missed": failed,
               "notes": {name: NOTES.get(name, "no note: see the misses") for name in failed}, "misses": misses}
    return {"benchmark": "grading-extraction", "config": config, "versions": _versions(), "figures": figures}


def print_table(result: dict, out=None) -> None:
    """One row per template (TP rate of positives, FP rate of negatives, per grader), then ours' misses and notes."""
    out = out or sys.stdout  # read at call time: a redirected stdout is honoured
    f = result["figures"]
    print(f"{'template':<26} {'kind':<4} {'n':>4} {'ours':>7} {'m-verify':>8} {'s1':>7}  goal", file=out)
    for name, r in f["templates"].items():
        kind = "TP" if r["kind"] == "positive" else "FP"
        cells = " ".join(f"{100 * r['rate'][g]:6.1f}%" for g in GRADERS)
        print(f"{name:<26} {kind:<4} {r['n']:>4} {cells}  {'ok' if r['goal_met'] else 'MISSED'}", file=out)
    for kind, label in (("positive", "all positives (TP)"), ("negative", "all negatives (FP)")):
        s = f["summary"][kind]
        if s["n"]:
            print(f"{label:<31} {s['n']:>4} " + " ".join(f"{100 * s[g]:6.1f}%" for g in GRADERS), file=out)
    print(f"goal for ours: TP >= {100 * GOAL['tp_min']:.1f}% and FP <= {100 * GOAL['fp_max']:.1f}% on every template: "
          f"{'met' if f['goal_met'] else 'missed on ' + ', '.join(f['goal_missed'])}", file=out)
    for name, examples in f["misses"].items():
        print(f"ours misses {name}: " + "; ".join(f"gold {e['gold']!r} read as {e['extracted']!r}" for e in examples), file=out)
    for name, note in f["notes"].items():
        print(f"why {name} misses: {note}", file=out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`Options`."""
    SPEC.add_to(p)


def main(args) -> int:
    """``ttscale bench grading``: read the flags, run, print the table (unless ``--json``) and the JSON line last,
    and write the JSON to ``--out`` when given. Refuses ``--per-template`` below 1 and a missing ``--math500`` file."""
    options = SPEC.build(args)[Options]
    return emit(lambda: run(options), options.json, options.out, print_table)


def _cli(argv: list[str] | None = None) -> int:
    """``python -m ...``: :func:`benchmarks.cli.run_module` (a refused flag is one sentence, exit status 2)."""
    return run_module(__doc__, add_arguments, main, argv)


if __name__ == "__main__":
    sys.exit(_cli())
