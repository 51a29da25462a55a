"""Benchmark problems: named datasets (local copy first, then the hub), local JSONL files and synthetic tasks.

    math500        HuggingFaceH4/MATH-500 (test, 500)         id = unique_id
    aime24         HuggingFaceH4/aime_2024 (train, 30)        id = id
    aime25         yentinglin/aime_2025 (train, 30)           the copy lighteval / open-r1 evaluate on
    gpqa-diamond   Idavidrein/gpqa, config gpqa_diamond (train, 198; gated: accept its terms and log in)
    synthetic[:task[:difficulty]]   verifiable generated problems (see benchmarks.data.synthetic)
    path/to/file.jsonl              one problem per line; --fields question=problem,answer=answer

A named dataset is read from ``<dir>/<name file>`` for the first data directory holding it — ``$TTSCALE_DATA``,
then ``../shared/data`` next to the repository (REFERENCE §6) — and only then from the hub, so tests and demos
run offline. GPQA becomes multiple choice as in s1: the four options are shuffled with a fixed seed (per question,
so ``limit`` does not change the order), listed as ``A) … D)`` after the question, and the answer is the letter.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from benchmarks.data.problem import LETTERS, Problem
from benchmarks.data.synthetic import load_synthetic
from engine.errors import TTScaleError
from engine.jsonl import read_jsonl

FIELD_TARGETS = ("question", "answer", "id", "choices")


@dataclass(frozen=True)
class NamedDataset:
    """Where a named benchmark lives and which of its fields hold id, question and answer."""

    hub_id: str
    config: str | None
    split: str
    local_file: str
    question: str = "problem"
    answer: str = "answer"
    id: str = "id"


NAMED = {
    "math500": NamedDataset("HuggingFaceH4/MATH-500", None, "test", "math500.jsonl", id="unique_id"),
    "aime24": NamedDataset("HuggingFaceH4/aime_2024", None, "train", "aime24.jsonl"),
    "aime25": NamedDataset("yentinglin/aime_2025", None, "train", "aime25.jsonl"),
    "gpqa-diamond": NamedDataset("Idavidrein/gpqa", "gpqa_diamond", "train", "gpqa_diamond.jsonl",
                                 question="Question", answer="Correct Answer", id="Record ID"),
}


def data_dirs() -> list[str]:
    """Directories searched for local copies: ``$TTSCALE_DATA`` (if set), then ``../shared/data`` from the repo root."""
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    dirs = [os.environ["TTSCALE_DATA"]] if os.environ.get("TTSCALE_DATA") else []
    return dirs + [os.path.normpath(os.path.join(repo_root, "..", "shared", "data"))]


def format_choices(question: str, choices: list[str] | tuple[str, ...]) -> str:
    """The question followed by a blank line and one ``A) choice`` line per option (s1's GPQA layout)."""
    return question.strip() + "\n\n" + "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))


def shuffled_choices(correct: str, wrong: list[str], seed: int, key: str) -> tuple[list[str], str]:
    """The options in an order fixed by ``(seed, key)`` and the letter of the correct one."""
    options = [correct] + list(wrong)
    order = list(range(len(options)))
    random.Random(f"{seed}:{key}").shuffle(order)
    return [options[i] for i in order], LETTERS[order.index(0)]


def parse_field_map(field_map: str | dict | None) -> dict[str, str]:
    """``"question=problem,answer=answer"`` (or a dict) as ``{target: source field}``.

    Targets are question, answer, id and choices. Refuses unknown targets and entries without ``=``.
    """
    if field_map is None or field_map == "":
        return {}
    if isinstance(field_map, str):
        pairs = {}
        for part in field_map.split(","):
            if "=" not in part:
                raise TTScaleError(f"--fields entry {part.strip()!r} has no '='; write target=field, e.g. question=problem,answer=answer")
            target, source = (x.strip() for x in part.split("=", 1))
            pairs[target] = source
        field_map = pairs
    unknown = sorted(set(field_map) - set(FIELD_TARGETS))
    if unknown:
        raise TTScaleError(f"--fields names unknown target {unknown[0]!r}; targets are {', '.join(FIELD_TARGETS)}")
    return dict(field_map)


def _field(row: dict, name: str, target: str, where: str):
    if name not in row:
        raise TTScaleError(f"{where} has no field {name!r} (needed for {target}); its fields are {', '.join(sorted(row))}, "
                           f"so map one with --fields {target}=<field>")
    return row[name]


def _choice_problem(pid: str, question: str, choices, answer, where: str, meta: dict) -> Problem:
    if not isinstance(choices, (list, tuple)) or not choices:
        raise TTScaleError(f"{where}: the choices field must be a non-empty list of strings, got {choices!r}")
    choices = [str(c).strip() for c in choices]
    ans = str(answer).strip()
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(choices):
        letter = LETTERS[answer]
    elif ans.upper().rstrip(")") in LETTERS[: len(choices)] and len(ans.rstrip(")")) == 1:
        letter = ans.upper().rstrip(")")
    elif ans in choices:
        letter = LETTERS[choices.index(ans)]
    else:
        raise TTScaleError(f"{where}: answer {answer!r} is neither a letter, an index nor one of the choices; give the correct option")
    return Problem(pid, format_choices(question, choices), letter, "choice", tuple(choices), meta)


def rows_to_problems(rows: list[dict], field_map: dict[str, str], source: str) -> list[Problem]:
    """Problems from raw rows with a ``{target: field}`` mapping (defaults: question or problem, answer, id).

    Refuses a row missing a mapped field, naming the field and the fields the row has.
    """
    problems = []
    for i, row in enumerate(rows):
        where = f"{source} row {i + 1}"
        q_name = field_map.get("question") or ("question" if "question" in row or "problem" not in row else "problem")
        a_name = field_map.get("answer", "answer")
        question = str(_field(row, q_name, "question", where))
        answer = _field(row, a_name, "answer", where)
        pid = str(_field(row, field_map["id"], "id", where)) if "id" in field_map else str(row.get("id", i))
        used = {q_name, a_name, field_map.get("id", "id"), field_map.get("choices", "choices")}
        meta = {k: v for k, v in row.items() if k not in used}
        if "choices" in field_map or "choices" in row:
            choices = _field(row, field_map.get("choices", "choices"), "choices", where)
            problems.append(_choice_problem(pid, question, choices, answer, where, meta))
        else:
            problems.append(Problem(pid, question, str(answer).strip(), "math", (), meta))
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise TTScaleError(f"{source}: problem id {dup!r} occurs more than once; ids key the results, so map --fields id=<unique field>")
    return problems


def gpqa_problems(rows: list[dict], seed: int, source: str) -> list[Problem]:
    """GPQA rows (Question, Correct Answer, Incorrect Answer 1-3, Record ID) as shuffled A-D choice problems."""
    problems = []
    for i, row in enumerate(rows):
        where = f"{source} row {i + 1}"
        question = str(_field(row, "Question", "question", where))
        correct = str(_field(row, "Correct Answer", "answer", where)).strip()
        wrong = [str(_field(row, f"Incorrect Answer {k}", "choices", where)).strip() for k in (1, 2, 3)]
        pid = str(row.get("Record ID") or i)
        choices, letter = shuffled_choices(correct, wrong, seed, pid)
        meta = {k: row[k] for k in ("High-level domain", "Subdomain") if k in row}
        problems.append(Problem(pid, format_choices(question, choices), letter, "choice", tuple(choices), meta))
    return problems


def _from_hub(name: str, spec: NamedDataset) -> list[dict]:
    searched = ", ".join(os.path.join(d, spec.local_file) for d in data_dirs())
    try:
        import datasets  # deferred: heavy (pyarrow, fsspec), needed only when a benchmark is fetched from the hub

        ds = datasets.load_dataset(spec.hub_id, spec.config, split=spec.split)
        return [dict(r) for r in ds]
    except Exception as exc:  # offline, gated, renamed: all end the same way for the user
        gated = " (it is gated: accept its terms on the hub and run `hf auth login`)" if name == "gpqa-diamond" else ""
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TTScaleError(f"dataset {name}: no local copy ({searched}) and the hub dataset {spec.hub_id}{gated} could not be "
                           f"loaded ({reason}); put {spec.local_file} in a folder named by $TTSCALE_DATA or connect to the network") from exc


def load_dataset_rows(name_or_path: str, limit: int | None = None, field_map: str | dict | None = None,
                      seed: int = 0) -> list[Problem]:
    """The problems of a benchmark: a name (see the module docstring), ``synthetic[:task[:difficulty]]`` or a .jsonl path.

    ``limit`` keeps the first problems in dataset order; ``seed`` fixes GPQA's choice order and the synthetic
    problems. ``field_map`` (``question=problem,answer=answer[,id=...][,choices=...]``) applies to local files only.
    Refuses unknown names, missing files, rows lacking a mapped field, a bad limit, and a named dataset that is
    neither stored locally nor reachable on the hub.
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise TTScaleError(f"--limit {limit!r}: must be a positive integer, or omitted for the whole dataset")
    name = (name_or_path or "").strip()
    if name == "synthetic" or name.startswith("synthetic:"):
        if field_map:
            raise TTScaleError("--fields applies to local .jsonl files only; synthetic problems have fixed fields")
        return load_synthetic(name, limit=limit, seed=seed)
    if name in NAMED:
        if field_map:
            raise TTScaleError(f"--fields applies to local .jsonl files only; dataset {name} has fixed fields")
        spec = NAMED[name]
        local = next((os.path.join(d, spec.local_file) for d in data_dirs() if os.path.isfile(os.path.join(d, spec.local_file))), None)
        rows = read_jsonl(local, what="dataset") if local else _from_hub(name, spec)
        source = local or spec.hub_id
        if limit is not None:
            rows = rows[:limit]
        if name == "gpqa-diamond":
            return gpqa_problems(rows, seed, source)
        return rows_to_problems(rows, {"question": spec.question, "answer": spec.answer, "id": spec.id}, source)
    if name.endswith(".jsonl") or os.sep in name or os.path.exists(name):
        path = os.path.expanduser(name)
        if not os.path.isfile(path):
            raise TTScaleError(f"--dataset {name}: no such file; give an existing .jsonl file or one of {', '.join(NAMED)}, synthetic")
        rows = read_jsonl(path, what="dataset", hint="give a .jsonl file with one JSON object per line")
        if not rows:
            raise TTScaleError(f"--dataset {name}: the file holds no rows; give a .jsonl file with one JSON object per line")
        return rows_to_problems(rows[:limit] if limit else rows, parse_field_map(field_map), path)
    raise TTScaleError(f"--dataset {name_or_path!r}: unknown dataset; use one of {', '.join(NAMED)}, "
                       "synthetic[:arith|count[:difficulty]] or a path to a .jsonl file")
