"""What a curation run leaves behind: the dataset in s1K's columns, a per-stage report and a manifest.

    write_outputs(OUT, selected, counts=[StageCount("pool", 0, 900), ..., StageCount("selection", 240, 100)],
                  drops=read_drops("WORK/drops.jsonl"), config={...}, seeds={"selection": 0})

    OUT/dataset/           datasets.load_from_disk(OUT/dataset): one row per selected question
    OUT/s1k.parquet        the same rows as one Parquet file
    OUT/report.json        stage by stage: in, out, dropped by reason; domain and trace-length counts
    OUT/domains.png        selected questions per MSC domain (beside the questions selection chose from)
    OUT/trace_lengths.png  trace-length distribution of the selected questions (and of those it chose from)
    OUT/summary.md         the report as Markdown
    OUT/manifest.json      config, seeds, package versions, stage counts, output hashes: what reproduces the run

Columns are s1K's exactly (``simplescaling/s1K`` dataset card: ``solution, question, cot_type, source_type`` strings,
``metadata`` a string, ``cot`` null, ``thinking_trajectories`` a list of strings, ``attempt`` a string). s1 wrote
``metadata`` with Python's ``str(dict)`` (read back with ``ast.literal_eval``); here it is JSON (``json.loads``),
holding the question's id, answer and every stage's metadata except the trace texts, which are the
``thinking_trajectories`` (the first trace, as s1K has one per question) and ``attempt`` columns.

The report refuses counts that do not add up: for every stage in = out + drops recorded for it, each stage takes
in what the one before gave out, and the last stage gives out exactly the rows written.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from curation.domains import MSC2020
from curation.schema import Drop, Question
from curation.select import first_trace, question_domain, trace_length
from engine.errors import TTScaleError
from engine.jsonl import iter_jsonl, write_json_atomic
from engine.version import package_version

S1K_COLUMNS = ("solution", "question", "cot_type", "source_type", "metadata", "cot", "thinking_trajectories", "attempt")
DATASET, PARQUET, REPORT, MANIFEST, SUMMARY = "dataset", "s1k.parquet", "report.json", "manifest.json", "summary.md"
DOMAINS_PNG, LENGTHS_PNG = "domains.png", "trace_lengths.png"
MANIFEST_SCHEMA = 1
VERSIONED = ("torch", "transformers", "datasets", "pyarrow", "matplotlib", "math-verify")
_TEXT_KEYS = ("thinking", "text", "attempt", "answer")   # trace fields that are the columns, not metadata


@dataclass(frozen=True)
class StageCount:
    """How many questions a stage took in and gave out (its drops make up the difference)."""

    stage: str
    n_in: int
    n_out: int


# ------------------------------------------------------------------------------------------- rows
def s1k_row(question: Question) -> dict:
    """One s1K row for a selected question: ``cot_type`` from ``metadata["cot_type"]`` (default ``math``),
    ``source_type`` the question's source, the first trace's thinking and attempt (its ``attempt``, else its
    ``answer``). Refuses a question without trace thinking text."""
    trace = first_trace(question) or {}
    thinking = trace.get("thinking", trace.get("text"))
    if not isinstance(thinking, str) or not thinking.strip():
        raise TTScaleError(f"question {question.id} ({question.source or 'no source'}) has no trace thinking text in "
                           "metadata['traces']; the dataset needs the trace stage's output for every selected question")
    attempt = trace.get("attempt", trace.get("answer", ""))
    meta = {k: v for k, v in question.metadata.items() if k != "traces"}
    kept = [{k: v for k, v in t.items() if k not in _TEXT_KEYS} for t in _all_traces(question)]
    if kept:
        meta["traces"] = kept                # counts, finish reasons, model: everything but the texts
    meta = {"id": question.id, "answer": question.answer, **meta}
    cot_type = question.metadata.get("cot_type")
    return {"solution": question.solution, "question": question.question,
            "cot_type": cot_type if isinstance(cot_type, str) and cot_type else "math",
            "source_type": question.source, "metadata": json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str),
            "cot": None, "thinking_trajectories": [thinking], "attempt": attempt if isinstance(attempt, str) else str(attempt)}


def _all_traces(question: Question) -> list[dict]:
    traces = question.metadata.get("traces")
    if isinstance(traces, dict) and isinstance(traces.get("traces"), list):
        traces = traces["traces"]
    if isinstance(traces, dict):
        traces = [traces]
    return [t for t in traces if isinstance(t, dict)] if isinstance(traces, list) else []


def write_dataset(out_dir: str, rows: list[dict]) -> tuple[str, str]:
    """Write ``rows`` (s1K rows) as ``out_dir/dataset`` (``save_to_disk``) and ``out_dir/s1k.parquet``; returns both
    paths. Refuses a row whose columns are not s1K's."""
    from datasets import Dataset, Features, List, Value  # deferred: datasets (pyarrow) is heavy; only this writer needs it
    from datasets.utils import logging as ds_logging  # deferred with the line above

    for i, row in enumerate(rows):
        if tuple(row) != S1K_COLUMNS:
            raise TTScaleError(f"row {i} has columns {', '.join(row)}; an s1K row has exactly {', '.join(S1K_COLUMNS)}")
    string = Value("string")
    features = Features({"solution": string, "question": string, "cot_type": string, "source_type": string,
                         "metadata": string, "cot": Value("null"), "thinking_trajectories": List(string),
                         "attempt": string})
    data = Dataset.from_list(rows, features=features) if rows else Dataset.from_dict({c: [] for c in S1K_COLUMNS}, features=features)
    dataset_dir, parquet = os.path.join(out_dir, DATASET), os.path.join(out_dir, PARQUET)
    bars = ds_logging.is_progress_bar_enabled()
    if bars:
        ds_logging.disable_progress_bar()     # the writer reports in the summary, not through progress bars
    try:
        data.save_to_disk(dataset_dir, num_shards=1 if not rows else None)  # zero rows would write no shard, which load_from_disk cannot read
        data.to_parquet(parquet)
    finally:
        if bars:
            ds_logging.enable_progress_bar()
    return dataset_dir, parquet


# ------------------------------------------------------------------------------------------- drops and counts
def read_drops(path: str) -> list[Drop]:
    """The :class:`Drop` records of a ``drops.jsonl`` file (one ``Drop.to_json()`` per line). Refuses a line without
    ``id``, ``stage`` and ``reason``."""
    out = []
    for number, row in enumerate(iter_jsonl(path, what="drops file"), 1):
        if not all(isinstance(row.get(k), str) and row.get(k) for k in ("id", "stage", "reason")):
            raise TTScaleError(f"{path} record {number} is not a drop record (it needs id, stage and reason); "
                               "fix or remove the line")
        out.append(Drop(row["id"], row["stage"], row["reason"], row.get("detail", ""), row.get("source", "")))
    return out


def stage_table(counts: Sequence[StageCount], drops: Iterable[Drop], rows_written: int) -> list[dict]:
    """One entry per stage, in order: ``{"stage", "in", "out", "dropped", "reasons": {reason: n}}``. Refuses a stage
    named twice, drops of a stage that is not listed, a stage whose in differs from out + its drops, a stage that
    takes in other than the previous stage gave out, and a last stage whose out differs from ``rows_written``."""
    if not counts:
        raise TTScaleError("the report needs the count of at least one stage; pass one StageCount per stage")
    names = [c.stage for c in counts]
    if len(set(names)) != len(names):
        raise TTScaleError(f"a stage is listed twice in the counts ({', '.join(names)}); give each stage once")
    reasons: dict[str, Counter] = {n: Counter() for n in names}
    for d in drops:
        if d.stage not in reasons:
            raise TTScaleError(f"drops name stage {d.stage!r}, which has no count (stages: {', '.join(names)}); "
                               "pass a StageCount for every stage that drops")
        reasons[d.stage][d.reason] += 1
    table, before = [], None
    for c in counts:
        dropped = sum(reasons[c.stage].values())
        if c.n_in != c.n_out + dropped:
            raise TTScaleError(f"stage {c.stage!r} took {c.n_in} questions in but gave {c.n_out} out and recorded "
                               f"{dropped} drops ({c.n_out + dropped} in all); every removed question needs a Drop")
        if before is not None and c.n_in != before.n_out:
            raise TTScaleError(f"stage {c.stage!r} took {c.n_in} questions in but stage {before.stage!r} before it gave "
                               f"{before.n_out} out; list the stages in the order they ran, each with its own counts")
        table.append({"stage": c.stage, "in": c.n_in, "out": c.n_out, "dropped": dropped,
                      "reasons": dict(sorted(reasons[c.stage].items(), key=lambda kv: (-kv[1], kv[0])))})
        before = c
    if counts[-1].n_out != rows_written:
        raise TTScaleError(f"the last stage {counts[-1].stage!r} gave {counts[-1].n_out} questions out but "
                           f"{rows_written} rows are written; pass the selected questions of this run")
    return table


def _domains(questions: Iterable[Question]) -> Counter:
    return Counter(question_domain(q) or "none" for q in questions)


def _lengths(questions: Iterable[Question]) -> list[int]:
    return [n for n in (trace_length(q) for q in questions) if n is not None]


def _length_stats(lengths: list[int]) -> dict | None:
    if not lengths:
        return None
    return {"n": len(lengths), "min": min(lengths), "median": statistics.median(lengths),
            "mean": round(statistics.fmean(lengths), 1), "max": max(lengths)}


# ------------------------------------------------------------------------------------------- figures
def plot_domains(selected: Counter, candidates: Counter | None, path: str) -> str:
    """Horizontal bars: selected questions per domain, beside the questions selection chose from."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib is heavy, only the figures need it
    from matplotlib.figure import Figure  # the object API: no pyplot state, no global backend switch

    codes = sorted(set(selected) | set(candidates or ()))
    fig = Figure(figsize=(9, max(2.5, 0.32 * len(codes) + 1.2)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ys = range(len(codes))
    labels = [f"{c} {MSC2020.get(c, 'no domain')[:38]}" for c in codes]
    if candidates:
        ax.barh([y + 0.2 for y in ys], [candidates.get(c, 0) for c in codes], height=0.4, color="#b8c7dd",
                label="chosen from")
    ax.barh([y - 0.2 if candidates else y for y in ys], [selected.get(c, 0) for c in codes],
            height=0.4 if candidates else 0.7, color="#2b5c9e", label="selected")
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("questions")
    ax.set_title("MSC2020 domains")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_lengths(selected: list[int], candidates: list[int] | None, path: str) -> str:
    """Histogram of trace lengths (tokens) of the selected questions, over that of the questions chosen from;
    both as fractions, so that the shift selection makes is visible."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib is heavy, only the figures need it
    from matplotlib.figure import Figure  # the object API: no pyplot state, no global backend switch

    fig = Figure(figsize=(8, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    values = (candidates or []) + selected
    if values:
        low, high = min(values), max(values)
        bins = [low + (high - low + 1) * i / 30 for i in range(31)]
        if candidates:
            ax.hist(candidates, bins=bins, color="#b8c7dd", label="chosen from", weights=[1 / len(candidates)] * len(candidates))
        if selected:
            ax.hist(selected, bins=bins, histtype="step", linewidth=2, color="#2b5c9e", label="selected",
                    weights=[1 / len(selected)] * len(selected))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no trace lengths recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("trace length (thinking tokens)")
    ax.set_ylabel("fraction of questions")
    ax.set_title("Trace lengths")
    fig.tight_layout()
    fig.savefig(path)
    return path


# ------------------------------------------------------------------------------------------- the writer
def versions() -> dict:
    """Versions of ttscale, Python and the packages a run depends on (None when one is not installed); no import."""
    out = {"ttscale": package_version(), "python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def summary_markdown(report: dict) -> str:
    """The report as Markdown: stages with drops by reason, domains, trace lengths, files."""
    lines = [f"# Curation run: {report['rows']} questions", "", "## Stages", "",
             "| stage | in | out | dropped | drops by reason |", "|---|---:|---:|---:|---|"]
    for s in report["stages"]:
        why = ", ".join(f"{r} {n}" for r, n in s["reasons"].items()) or "-"
        lines.append(f"| {s['stage']} | {s['in']} | {s['out']} | {s['dropped']} | {why} |")
    lines += ["", "## Domains (MSC2020)", "", "| code | domain | selected | chosen from |", "|---|---|---:|---:|"]
    for code, n in report["domains"]["selected"].items():
        lines.append(f"| {code} | {MSC2020.get(code, 'no domain')} | {n} | {report['domains']['candidates'].get(code, '-')} |")
    lines += ["", "## Trace lengths (thinking tokens)", "", "| set | n | min | median | mean | max |", "|---|---:|---:|---:|---:|---:|"]
    for name in ("selected", "candidates"):
        st = report["trace_lengths"][name]
        lines.append(f"| {name} | " + (" | ".join(str(st[k]) for k in ("n", "min", "median", "mean", "max")) if st else "0 | - | - | - | -") + " |")
    lines += ["", "## Files", "", f"- `{DATASET}/`: `datasets.load_from_disk` (columns: {', '.join(S1K_COLUMNS)})",
              f"- `{PARQUET}`: the same rows", f"- `{DOMAINS_PNG}`, `{LENGTHS_PNG}`: the figures",
              f"- `{REPORT}`: these numbers; `{MANIFEST}`: config, seeds and versions of the run", ""]
    return "\n".join(lines)


def write_outputs(out_dir: str, selected: Sequence[Question], counts: Sequence[StageCount], drops: Iterable[Drop],
                  config: dict, seeds: dict, candidates: Sequence[Question] | None = None) -> dict:
    """Write every file of the module docstring into ``out_dir`` and return the report. ``candidates`` are the
    questions selection chose from (for the figures' comparison); ``config`` and ``seeds`` go to the manifest as
    given. The counts are checked (:func:`stage_table`) before anything is written. Refuses unbalanced counts,
    config or seeds that are not JSON objects, and what :func:`s1k_row` refuses."""
    if not isinstance(config, dict) or not isinstance(seeds, dict):
        raise TTScaleError("write_outputs needs config and seeds as dicts (what the manifest stores to reproduce the run)")
    try:
        json.dumps({"config": config, "seeds": seeds})
    except (TypeError, ValueError) as exc:
        raise TTScaleError(f"the run's config or seeds are not JSON ({exc}); pass plain values (asdict of the configs)") from exc
    drops = list(drops)
    stages = stage_table(counts, drops, len(selected))
    rows = [s1k_row(q) for q in selected]
    os.makedirs(out_dir, exist_ok=True)
    dataset_dir, parquet = write_dataset(out_dir, rows)
    chosen_from = list(candidates) if candidates is not None else []
    sel_domains, cand_domains = _domains(selected), _domains(chosen_from)
    sel_lengths, cand_lengths = _lengths(selected), _lengths(chosen_from)
    report = {
        "rows": len(rows), "columns": list(S1K_COLUMNS), "stages": stages,
        "domains": {"selected": dict(sorted(sel_domains.items())), "candidates": dict(sorted(cand_domains.items()))},
        "trace_lengths": {"selected": _length_stats(sel_lengths), "candidates": _length_stats(cand_lengths)},
    }
    plot_domains(sel_domains, cand_domains or None, os.path.join(out_dir, DOMAINS_PNG))
    plot_lengths(sel_lengths, cand_lengths or None, os.path.join(out_dir, LENGTHS_PNG))
    write_json_atomic(os.path.join(out_dir, REPORT), report, indent=2)
    with open(os.path.join(out_dir, SUMMARY), "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(report))
    manifest = {
        "schema": MANIFEST_SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config, "seeds": seeds, "versions": versions(),
        "stages": [{k: s[k] for k in ("stage", "in", "out", "dropped")} for s in stages],
        "outputs": {"dataset": DATASET, "parquet": PARQUET, "rows": len(rows), "parquet_sha256": _sha256(parquet),
                    "ids_sha256": hashlib.sha256("\n".join(q.id for q in selected).encode()).hexdigest()},
    }
    write_json_atomic(os.path.join(out_dir, MANIFEST), manifest, indent=2)
    return report
