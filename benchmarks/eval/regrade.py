"""``ttscale eval report DIR --regrade``: grade a finished run's rows again with the current grader, and say what changed.

    regrade(out_dir) -> Regrade     rows re-read from their stored generations, written back, report redrawn

Sequential rows are re-read from their ``generation``. Parallel rows are re-read from every sample's stored text and
voted again with the same rule and the same scores (a pool's texts live in its largest-N row; smaller N take the
first n); rows of runs that stored no sample texts are kept as graded and counted. Compute-optimal rows are derived
again from the regraded rows. The problems (gold answers, choices) come from the run's own dataset settings in
``config.json``; the grading rules are :class:`benchmarks.eval.grading.Grader`'s, as in a new run. Every change is
listed in ``DIR/regrade.json``; ``samples.jsonl`` is rewritten atomically, then metrics, figure and summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from benchmarks.data.datasets import load_dataset_rows
from benchmarks.eval.config import DERIVED
from benchmarks.eval.grading import Grader
from benchmarks.eval.methods import RULE, compute_optimal_rows
from benchmarks.eval.report import report
from benchmarks.eval.store import SAMPLES, canonical_json, read_config, read_samples, row_key, shard_paths, sort_key
from engine.errors import TTScaleError
from engine.jsonl import write_json_atomic, write_jsonl_atomic
from engine.search.select import choose_index

REGRADE = "regrade.json"


@dataclass
class Regrade:
    """What a regrade did: rows read, rows graded again, rows kept as graded (no sample texts), the changes, paths."""

    rows: int = 0
    regraded: int = 0
    kept: int = 0
    changed: list[dict] = field(default_factory=list)
    paths: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The content of ``regrade.json``."""
        return {"rows": self.rows, "regraded": self.regraded, "kept_without_texts": self.kept,
                "changed": len(self.changed), "changes": self.changed}


def _texts(row: dict, by_key: dict) -> list[str] | None:
    """The sample texts a parallel row voted over: its own, or the first n of its pool's largest-N row."""
    extra = row.get("extra") or {}
    if isinstance(extra.get("texts"), list):
        return extra["texts"]
    pool = extra.get("pool")
    n = row["setting"].get("n")
    if isinstance(pool, int) and isinstance(n, int):
        top = by_key.get((row["problem_id"], row["method"], pool))
        texts = ((top or {}).get("extra") or {}).get("texts")
        if isinstance(texts, list) and len(texts) >= n:
            return texts[:n]
    return None


def _regrade_row(row: dict, problem, grader: Grader, by_key: dict) -> dict | None:
    """The row graded again (a new dict), or None when it cannot be (a parallel row without its sample texts)."""
    if row.get("scaling") != "parallel":
        answer = grader.extract(problem, row.get("generation"))
        return {**row, "extracted": answer, "correct": grader.is_correct(problem, answer)}
    texts = _texts(row, by_key)
    if texts is None:
        return None
    extra = dict(row.get("extra") or {})
    answers = [grader.extract(problem, t) for t in texts]
    scores = list(extra.get("scores") or [None] * len(texts))[: len(texts)]
    pick = choose_index(answers, scores, RULE[row["method"]])
    chosen = None if pick is None else answers[pick]
    extra["answers"] = answers
    return {**row, "extracted": chosen, "correct": grader.is_correct(problem, chosen),
            "generation": texts[pick] if pick is not None else row.get("generation"), "extra": extra}


def regrade(out_dir: str) -> Regrade:
    """Grade every row of the run in ``out_dir`` again (see the module docstring); write the rows, ``regrade.json``
    and the report. Refuses a directory that is not an evaluation run, one with unmerged shards (a run still under
    way, or killed: resume it first), and rows whose problem is no longer in the run's dataset."""
    config = read_config(out_dir) if os.path.isdir(out_dir) else None
    if config is None:
        raise TTScaleError(f"{out_dir}: no config.json, so it is not an evaluation run directory; give the --out of a ttscale eval run")
    if shard_paths(out_dir):
        raise TTScaleError(f"{out_dir} holds unmerged per-process shards (samples.rank*.jsonl): the run is under way or was "
                           "killed; run the same ttscale eval command again to finish it, then regrade")
    rows = read_samples(out_dir)
    if not rows:
        raise TTScaleError(f"{out_dir}: samples.jsonl holds no rows to regrade")
    problems = {p.id: p for p in load_dataset_rows(config["dataset"], limit=config.get("limit"), field_map=config.get("fields"),
                                                   seed=config.get("seed", 0))}
    missing = sorted({r["problem_id"] for r in rows} - set(problems))
    if missing:
        raise TTScaleError(f"{out_dir}: {len(missing)} rows' problems (e.g. {missing[0]}) are not in the dataset "
                           f"{config['dataset']!r} any more; regrade needs the run's own problems")
    grader = Grader.for_run(config["dataset"], config.get("think_end"))
    by_key = {(r["problem_id"], r["method"], r["setting"].get("n")): r for r in rows}
    result = Regrade(rows=len(rows))
    before = {row_key(r["problem_id"], r["method"], r["setting"]): r for r in rows}
    out = []
    for row in rows:
        if row["method"] in DERIVED:
            continue
        new = _regrade_row(row, problems[row["problem_id"]], grader, by_key)
        if new is None:
            result.kept += 1
            out.append(row)
        else:
            result.regraded += 1
            out.append(new)
    if any(r["method"] in DERIVED for r in rows):
        ns = sorted({n for m, settings in config["plan"].items() if m not in DERIVED for s in settings
                     if isinstance(n := s.get("n"), int)})
        derived = compute_optimal_rows(out, config["methods"], ns, config["pilot_n"])
        result.regraded += len(derived)
        out += derived
    for row in out:
        old = before.get(row_key(row["problem_id"], row["method"], row["setting"]))
        if old is not None and (old.get("extracted"), old.get("correct")) != (row.get("extracted"), row.get("correct")):
            result.changed.append({"problem_id": row["problem_id"], "method": row["method"], "setting": row["setting"],
                                   "gold": row.get("gold"), "before": {"extracted": old.get("extracted"), "correct": old.get("correct")},
                                   "after": {"extracted": row.get("extracted"), "correct": row.get("correct")}})
    out.sort(key=sort_key)
    write_jsonl_atomic(os.path.join(out_dir, SAMPLES), out, dumps_fn=canonical_json)
    result.paths = {"regrade": os.path.join(out_dir, REGRADE), **report(out_dir)}
    write_json_atomic(result.paths["regrade"], result.to_json(), indent=2)
    return result
