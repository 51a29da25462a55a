"""Decontamination and dedup benchmark: s1's 8-gram rule and our dedup on a pool the size of s1's (59,029 questions).

    python -m benchmarks.curation.decontam [--questions N] [--planted F] [--duplicates F] [--near-duplicates F]
                                           [--seed S] [--repeats R] [--out FILE] [--json]

Pool. Built in-process: random sentences of 15-80 words over a Zipf-distributed vocabulary of ``--vocab``
pseudo-words; ``--planted`` of them get one 8-gram of a random evaluation question spliced in, ``--duplicates``
are exact copies of earlier questions (upper-cased, spacing doubled) and ``--near-duplicates`` near copies of
earlier questions of 40 words or more ("Problem:" put in front; Jaccard >= 0.97 on 5-shingles).

Evaluation sets. MATH-500 and AIME 2024 from their local copies (``$TTSCALE_DATA`` or ``../shared/data``); AIME
2025 and GPQA Diamond are stand-ins built in-process of the real sizes (30 questions of ~60 words, 198 of ~110),
because no copy exists offline (GPQA is gated). A set without a local copy is replaced by a stand-in too; the
output says which are which.

Phases, each timed alone after a warm-up on the first 2,000 questions (``--repeats`` rounds, the fastest counts):

    index          build the 8-gram index of the four sets (the files already read)
    decontam       curation.decontam.decontaminate: a dict of 8-gram tuples (the product's choice)
    decontam-hash  the competitor: a set of hashed 8-grams, same scan (``hash(tuple)``), no detail
    exact dedup    deduplicate with near dedup off
    dedup          deduplicate with MinHash LSH near dedup (the product's default); near = dedup - exact

It checks what it times: every planted question dropped as ``contaminated`` and nothing else, every copy dropped
as ``duplicate`` and every near copy as ``near_duplicate``. Goal: the whole run under 60 s on a 2-core CPU.
No model, no torch. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from importlib.metadata import PackageNotFoundError, version

from benchmarks import options
from benchmarks.cli import emit, run_module
from benchmarks.curation import DecontamOptions
from benchmarks.data.datasets import NAMED, data_dirs
from curation.decontam import DecontamConfig, EvalIndex, decontaminate, deduplicate, eval_texts, ngrams, words
from curation.schema import Question

Options = DecontamOptions
SPEC = options.DECONTAM.spec
GOAL_S = 60.0
WARMUP = 2000
# (name, questions, words per question) of the stand-ins: the real sets' sizes and rough lengths.
STAND_INS = {"math500": (500, 45), "aime24": (30, 60), "aime25": (30, 60), "gpqa-diamond": (198, 110)}
EVAL_SETS = ("math500", "aime24", "aime25", "gpqa-diamond")
OFFLINE_ONLY = ("aime25", "gpqa-diamond")  # always stand-ins here: no offline copy, GPQA gated


# ─── the data ──────────────────────────────────────────────────────────────────────────────────────────────────


def vocabulary(size: int, rng: random.Random) -> tuple[list[str], list[float]]:
    """``size`` distinct pseudo-words (2-9 letters) and their Zipf cumulative weights (word k has weight 1/k)."""
    seen: set[str] = set()
    while len(seen) < size:
        seen.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))))
    vocab = sorted(seen)
    rng.shuffle(vocab)
    cum, total = [], 0.0
    for k in range(1, size + 1):
        total += 1.0 / k
        cum.append(total)
    return vocab, cum


def sentence(rng: random.Random, vocab: list[str], cum: list[float], n_words: int) -> str:
    """``n_words`` words drawn from the vocabulary, capitalised, with a question mark."""
    text = " ".join(rng.choices(vocab, cum_weights=cum, k=n_words))
    return text[0].upper() + text[1:] + "?"


def stand_in(name: str, rng: random.Random, vocab: list[str], cum: list[float]) -> list[str]:
    """In-process questions of the size and length of evaluation set ``name``."""
    count, length = STAND_INS[name]
    return [sentence(rng, vocab, cum, max(12, int(rng.gauss(length, length / 4)))) for _ in range(count)]


def eval_sets(rng: random.Random, vocab: list[str], cum: list[float]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``{set: question texts}`` and ``{set: where it came from}``: the local file, else a stand-in."""
    texts, origin = {}, {}
    for name in EVAL_SETS:
        local = next((os.path.join(d, NAMED[name].local_file) for d in data_dirs()
                      if os.path.isfile(os.path.join(d, NAMED[name].local_file))), None)
        if local and name not in OFFLINE_ONLY:
            texts[name] = eval_texts(name)[1]
            origin[name] = local
        else:
            texts[name] = stand_in(name, rng, vocab, cum)
            origin[name] = f"stand-in ({len(texts[name])} questions built in-process)"
    return texts, origin


def build_pool(options: Options, evals: dict[str, list[str]]) -> tuple[list[Question], dict[str, set[str]]]:
    """The pool in order and the ids each stage should drop: ``contaminated`` (planted questions and their copies),
    ``duplicate`` (copies of clean questions) and ``near_duplicate``. Copies come after their originals."""
    rng = random.Random(options.seed)
    vocab, cum = vocabulary(options.vocab, rng)
    grams = [g for texts in evals.values() for t in texts for g in ngrams(words(t), 8)]
    n_near = int(options.questions * options.near_duplicates)
    n_dup = int(options.questions * options.duplicates)
    n_base = options.questions - n_dup - n_near
    base, planted = [], set()
    for _ in range(n_base):
        w = sentence(rng, vocab, cum, rng.randint(15, 80)).split()
        if rng.random() < options.planted * options.questions / n_base:
            at = rng.randrange(len(w))
            w = w[:at] + list(rng.choice(grams)) + w[at:]
            base.append(Question(" ".join(w), source="bench-planted"))
            planted.add(base[-1].id)
        else:
            base.append(Question(" ".join(w), source="bench"))
    keyed = [(float(i), q) for i, q in enumerate(base)]
    expect = {"contaminated": set(planted), "duplicate": set(), "near_duplicate": set()}
    for _ in range(n_dup):
        i = rng.randrange(n_base)
        q = Question(base[i].question.upper().replace(" ", "  "), source="bench-copy")
        keyed.append((i + rng.uniform(0.5, n_base - i), q))
        expect["contaminated" if base[i].id in planted else "duplicate"].add(q.id)
    long_ids = [i for i, q in enumerate(base) if len(q.question.split()) >= 40 and q.id not in planted]
    for i in rng.sample(long_ids, n_near):
        q = Question("Problem: " + base[i].question, source="bench-near")
        keyed.append((i + rng.uniform(0.5, n_base - i), q))
        expect["near_duplicate"].add(q.id)
    keyed.sort(key=lambda kq: kq[0])
    return [q for _, q in keyed], expect


# ─── the competitor and the timing ─────────────────────────────────────────────────────────────────────────────


def hashed_decontaminate(questions: list[Question], hashed: set[int], n: int = 8) -> list[Question]:
    """The competitor: the same scan against a set of ``hash(8-gram)`` ints (kept questions only, no detail)."""
    return [q for q in questions if hashed.isdisjoint(map(hash, ngrams(words(q.question), n)))]


def _best(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("datasketch", "numpy", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def run(options: Options) -> dict:
    """Build the evaluation sets and the pool, time every phase, check what was dropped, return the JSON line's object."""
    wall = time.perf_counter()
    rng = random.Random(options.seed + 1)
    vocab, cum = vocabulary(options.vocab, random.Random(options.seed))
    evals, origin = eval_sets(rng, vocab, cum)
    start = time.perf_counter()
    pool, truth = build_pool(options, evals)
    build_s = time.perf_counter() - start
    config = DecontamConfig(eval_sets=EVAL_SETS)

    t_index, index = _best(lambda: EvalIndex.from_texts(evals, 8), options.repeats)
    hashed = {hash(g) for g in index.grams}
    warm = pool[:WARMUP]
    list(decontaminate(warm, index, lambda d: None))
    hashed_decontaminate(warm, hashed)
    drops: list = []
    t_decontam, kept = _best(lambda: (drops.clear(), list(decontaminate(pool, index, drops.append)))[1], options.repeats)
    contaminated = [d for d in drops if d.reason == "contaminated"]
    t_hashed, kept_hashed = _best(lambda: hashed_decontaminate(pool, hashed), options.repeats)

    list(deduplicate(warm, lambda d: None, config))
    exact_drops: list = []
    no_near = DecontamConfig(eval_sets=EVAL_SETS, near_dedup=False)
    t_exact, _ = _best(lambda: (exact_drops.clear(), list(deduplicate(kept, exact_drops.append, no_near)))[1], options.repeats)
    dedup_drops: list = []
    t_dedup, final = _best(lambda: (dedup_drops.clear(), list(deduplicate(kept, dedup_drops.append, config)))[1], options.repeats)

    found = {"contaminated": {d.id for d in contaminated},
             **{r: {d.id for d in dedup_drops if d.reason == r} for r in ("duplicate", "near_duplicate")}}
    checks = {r: {"expected": len(truth[r]), "found": len(found[r] & truth[r]), "unexpected": len(found[r] - truth[r])}
              for r in truth}
    checks["hashed_agrees"] = [q.id for q in kept] == [q.id for q in kept_hashed]
    checks["all_found"] = checks["hashed_agrees"] and all(
        checks[r]["found"] == checks[r]["expected"] and checks[r]["unexpected"] == 0 for r in truth)
    n = len(pool)
    phases = {
        "index": {"seconds": t_index, "items": sum(len(t) for t in evals.values()), "grams": len(index.grams)},
        "decontam": {"seconds": t_decontam, "items": n, "dropped": len(contaminated)},
        "decontam-hash": {"seconds": t_hashed, "items": n, "dropped": n - len(kept_hashed)},
        "exact dedup": {"seconds": t_exact, "items": len(kept), "dropped": len(exact_drops)},
        "dedup": {"seconds": t_dedup, "items": len(kept), "dropped": len(dedup_drops)},
        "near (dedup - exact)": {"seconds": t_dedup - t_exact, "items": len(kept), "dropped": len(found["near_duplicate"])},
    }
    total = time.perf_counter() - wall
    figures = {"phases": phases, "checks": checks, "kept": len(final), "pool_build_s": build_s, "total_s": total,
               "goal_s": GOAL_S, "goal_met": total < GOAL_S,
               "tuple_vs_hash": t_decontam / t_hashed if t_hashed else None}
    conf = {"questions": n, "vocab": options.vocab, "planted": options.planted, "duplicates": options.duplicates,
            "near_duplicates": options.near_duplicates, "seed": options.seed, "repeats": options.repeats,
            "eval_sets": origin, "near_threshold": config.near_threshold, "shingle": config.shingle, "num_perm": config.num_perm}
    device = {"platform": platform.platform(), "cpus": os.cpu_count(),
              "note": "absolute times hold only for this machine (and only when nothing else ran beside it); quote the ratios"}
    return {"benchmark": "curation-decontam", "config": conf, "versions": _versions(), "device": device, "figures": figures}


def print_table(result: dict, out=None) -> None:
    """The evaluation sets used, one row per phase (seconds, microseconds per item, dropped), the checks and the goal."""
    out = out or sys.stdout
    f, c = result["figures"], result["config"]
    for name, where in c["eval_sets"].items():
        print(f"eval set {name:<13} {where}", file=out)
    print(f"{'phase':<22} {'items':>7} {'seconds':>8} {'us/item':>8} {'dropped':>8}", file=out)
    for name, p in f["phases"].items():
        per = 1e6 * p["seconds"] / p["items"] if p["items"] else 0.0
        print(f"{name:<22} {p['items']:>7} {p['seconds']:>8.3f} {per:>8.1f} {p.get('dropped', '-'):>8}", file=out)
    k = f["checks"]
    print("found/planted (unexpected): " + ", ".join(f"{r} {k[r]['found']}/{k[r]['expected']} ({k[r]['unexpected']})"
                                                     for r in ("contaminated", "duplicate", "near_duplicate"))
          + f"; the hashed scan keeps the same questions: {k['hashed_agrees']}", file=out)
    print(f"{f['phases']['index']['grams']} distinct 8-grams indexed; tuple dict / hashed-int set scan time: "
          f"{f['tuple_vs_hash']:.2f}; pool built in {f['pool_build_s']:.1f} s; "
          f"whole run {f['total_s']:.1f} s (goal < {f['goal_s']:.0f} s: {'met' if f['goal_met'] else 'missed'})", file=out)
    print(result["device"]["note"], file=out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`Options`."""
    SPEC.add_to(p)


def main(args) -> int:
    """``ttscale bench decontam``: read the flags, run, print the table (unless ``--json``) and the JSON line last,
    and write the JSON to ``--out`` when given. Refuses out-of-range options and an unwritable ``--out``."""
    options = SPEC.build(args)[Options]
    return emit(lambda: run(options), options.json, options.out, print_table)


def _cli(argv: list[str] | None = None) -> int:
    """``python -m ...``: :func:`benchmarks.cli.run_module` (a refused flag is one sentence, exit status 2)."""
    return run_module(__doc__, add_arguments, main, argv)


if __name__ == "__main__":
    sys.exit(_cli())
