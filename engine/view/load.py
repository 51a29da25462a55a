"""What ``ttscale view`` can show, read and checked in Python before any page is built.

    view = load_view("trace.jsonl")      # or tree.json, an eval run directory, a curation output directory
    view.kind, view.title, view.warnings, view.data

Four kinds, told apart by content, not by name:

    trace     JSONL of ``generation`` / ``token`` records (``ttscale generate --trace FILE``; engine/trace.py)
    tree      JSON ``{"problems": [...], "nodes": [...]}`` (``ttscale search --tree FILE``; engine/search/tree.py)
    eval      a directory holding ``samples.jsonl`` (or its shards) and ``config.json`` (``ttscale eval --out DIR``);
              ``metrics.json`` is recomputed from the rows, so a run still going shows what it has
    curation  a directory holding ``report.json`` (``ttscale curate --out DIR``)

A file named ``metrics.json`` / ``samples.jsonl`` or ``report.json`` stands for its directory. ``view.data`` is
plain JSON: the page embeds it as it is, and the browser code (``assets/viewer.js``) renders it. What is wrong with
the input is one sentence (:class:`~engine.errors.TTScaleError`); what is odd but readable (a trace cut short, a
torn last line, an unfinished run) becomes a warning the page shows at the top.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field

from benchmarks.eval.report import compute_metrics
from benchmarks.eval.store import CONFIG, SAMPLES, read_config, read_samples, shard_paths
from engine.errors import TTScaleError
from engine.formats import FORMATS
from engine.jsonl import JsonlStats
from engine.search.tree import STATUSES
from engine.trace import read_trace

KINDS = ("trace", "tree", "eval", "curation")
NODE_FIELDS = ("id", "parent", "problem", "depth", "text", "status")
REPORT = "report.json"
MANIFEST = "manifest.json"
MAX_TEXT = 20_000  # characters of one eval sample's prompt or generation embedded in the page; the rest is cut, visibly


@dataclass
class View:
    """One thing to show: its ``kind`` (one of :data:`KINDS`), a ``title``, the ``source`` path, the JSON ``data``
    the page renders, and ``warnings`` the page shows above it."""

    kind: str
    title: str
    source: str
    data: dict
    warnings: list[str] = field(default_factory=list)


def load_view(path: str) -> View:
    """Read ``path`` as a trace, a search tree, an eval run or a curation output (see the module docstring).

    Refuses, in one sentence naming the path: a path that does not exist, an empty directory, a directory or file
    that is none of the four kinds, and a file of a known kind whose records are malformed.
    """
    check_source(path)
    if os.path.isdir(path):
        return _load_dir(path)
    name = os.path.basename(path)
    if name in ("metrics.json", SAMPLES, CONFIG, "summary.md") and os.path.exists(os.path.join(os.path.dirname(path) or ".", SAMPLES)):
        return _load_eval(os.path.dirname(path) or ".")
    if name in (REPORT, MANIFEST) and os.path.exists(os.path.join(os.path.dirname(path) or ".", REPORT)):
        return _load_curation(os.path.dirname(path) or ".")
    if os.path.getsize(path) == 0:
        raise TTScaleError(f"{path}: the file is empty; give a trace written by --trace, a tree written by --tree, "
                           "or an eval / curation output directory")
    first = _first_value(path)
    if isinstance(first, dict) and first.get("type") in ("generation", "token"):
        return _load_trace(path)
    if isinstance(first, dict) and "nodes" in first and "problems" in first:
        return _load_tree(path, first)
    raise TTScaleError(f"{path}: not something ttscale view shows: it is neither a trace (JSONL of generation/token "
                       "records from --trace), a search tree (JSON with problems and nodes from --tree), nor a file of "
                       "an eval or curation output directory")


def check_source(path: str) -> None:
    """Refuse, in one sentence, a path that does not exist (checked before anything else is done)."""
    if not os.path.exists(path):
        raise TTScaleError(f"{path}: no such file or directory; give a trace (.jsonl), a search tree (.json), "
                           "an eval run directory or a curation output directory")


def _first_value(path: str):
    """The whole file as one JSON value when it is one, else its first line's value, else None."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise TTScaleError(f"{path}: not UTF-8 text; is it a binary file? give a trace (.jsonl) or a search tree (.json)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    line = text.lstrip().split("\n", 1)[0]
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _load_dir(path: str) -> View:
    entries = [e for e in os.listdir(path) if not e.startswith(".")]
    if not entries:
        raise TTScaleError(f"{path}: the directory is empty; give an eval run directory (ttscale eval --out) or a "
                           "curation output directory (ttscale curate --out)")
    if os.path.exists(os.path.join(path, SAMPLES)) or shard_paths(path):
        return _load_eval(path)
    if os.path.exists(os.path.join(path, REPORT)):
        return _load_curation(path)
    raise TTScaleError(f"{path}: neither an eval run directory (no {SAMPLES}) nor a curation output directory (no {REPORT}); "
                       "give the --out directory of ttscale eval or ttscale curate, or a trace / tree file")


# ----------------------------------------------------------------------------------------------- trace


def _load_trace(path: str) -> View:
    stats = JsonlStats()
    records = read_trace(path, stats=stats)
    warnings = []
    if stats.torn:
        warnings.append(f"{os.path.basename(path)} ends in a torn line (the writer was killed mid-record); "
                        "that record is left out")
    prompts, tokens = [], defaultdict(list)
    for rec in records:
        if rec["type"] == "generation":
            prompts.append({k: v for k, v in rec.items() if k != "type"})
        else:
            tokens[rec["prompt_index"]].append({k: v for k, v in rec.items() if k not in ("type", "prompt_index")})
    for head in prompts:
        toks = tokens.get(head["prompt_index"], [])
        head["tokens"] = toks
        expected = head.get("generated_tokens")
        if isinstance(expected, int) and len(toks) != expected:
            head["cut_short"] = True
            warnings.append(f"trace cut short: prompt {head['prompt_index']} has {len(toks)} of its {expected} token "
                            "records; its header's counts are the generation's, the tokens shown are partial")
    if not prompts:
        raise TTScaleError(f"{path}: a trace without any generation record; regenerate it with --trace")
    n = sum(len(p["tokens"]) for p in prompts)
    return View("trace", f"trace · {os.path.basename(path)} · {len(prompts)} prompt(s), {n} tokens", path,
                {"prompts": prompts}, warnings)


# ----------------------------------------------------------------------------------------------- tree


def _load_tree(path: str, tree: dict) -> View:
    problems, nodes = tree.get("problems"), tree.get("nodes")
    if not isinstance(problems, list) or not isinstance(nodes, list):
        raise TTScaleError(f"{path}: 'problems' and 'nodes' must be lists; regenerate the tree with ttscale search --tree")
    ids = set()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise TTScaleError(f"{path}: node {i} is not a JSON object; regenerate the tree with ttscale search --tree")
        missing = [f for f in NODE_FIELDS if f not in node]
        if missing:
            raise TTScaleError(f"{path}: node {i} has no {', '.join(missing)}; regenerate the tree with ttscale search --tree")
        if node["status"] not in STATUSES:
            raise TTScaleError(f"{path}: node {node['id']} has status {node['status']!r}, not one of {', '.join(STATUSES)}")
        ids.add(node["id"])
    for node in nodes:
        if node["parent"] is not None and node["parent"] not in ids:
            raise TTScaleError(f"{path}: node {node['id']} names parent {node['parent']}, which is not in the file; "
                               "regenerate the tree with ttscale search --tree")
    warnings = []
    for i, p in enumerate(problems):
        if not isinstance(p, dict) or "root" not in p:
            raise TTScaleError(f"{path}: problem {i} has no root node; regenerate the tree with ttscale search --tree")
        if p["root"] not in ids:
            raise TTScaleError(f"{path}: problem {i}'s root node {p['root']} is not in the file")
        if "chosen" not in p:
            warnings.append(f"problem {i} has no search outcome (chosen answer, votes): the tree was written by an older "
                            "ttscale or while its search was still running, so no path is highlighted")
    if not problems:
        raise TTScaleError(f"{path}: a search tree without problems; regenerate it with ttscale search --tree")
    return View("tree", f"search tree · {os.path.basename(path)} · {len(problems)} problem(s), {len(nodes)} nodes", path,
                {"problems": problems, "nodes": nodes}, warnings)


# ----------------------------------------------------------------------------------------------- eval


def split_generation(text: str, think_end: str | None) -> tuple[str, str]:
    """(thinking, answer) of a generated text: cut at ``think_end`` when given, else at the first delimiter of a
    known format found in it; with no delimiter the whole text is the answer."""
    ends = [think_end] if think_end else [f.think_end for f in FORMATS.values()]
    for end in ends:
        at = text.find(end)
        if at >= 0:
            return text[:at], text[at + len(end):]
    return "", text


def _cut(text, what: str):
    if not isinstance(text, str) or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n… [{what} cut here by ttscale view: {len(text) - MAX_TEXT:,} more characters]"


def _load_eval(path: str) -> View:
    rows = read_samples(path)
    config = read_config(path)
    warnings = []
    if not rows:
        raise TTScaleError(f"{path}: the eval run has no sample rows yet; wait for its first rows or give another run directory")
    if not os.path.exists(os.path.join(path, SAMPLES)):
        warnings.append("this run is unfinished (rows are still in per-process shards): the curves show the rows so far")
    metrics = compute_metrics(rows, config)
    warnings += metrics.get("warnings", [])
    think_end = (config or {}).get("think_end")
    prompts, samples = {}, []
    for r in rows:
        prompts.setdefault(r["problem_id"], _cut(r.get("prompt"), "prompt"))
        thinking, answer = split_generation(r.get("generation") or "", think_end)
        samples.append({"problem_id": r["problem_id"], "method": r["method"], "setting": r["setting"],
                        "correct": r["correct"], "extracted": r.get("extracted"), "gold": r.get("gold"),
                        "thinking": _cut(thinking, "thinking"), "answer": _cut(answer, "answer"),
                        "thinking_tokens": r.get("thinking_tokens"), "answer_tokens": r.get("answer_tokens")})
    title = " · ".join(str(config[k]) for k in ("dataset", "model") if config and config.get(k)) or os.path.basename(os.path.abspath(path))
    return View("eval", f"eval · {title} · {len(rows)} rows", path,
                {"metrics": metrics, "samples": samples, "prompts": prompts}, warnings)


# ----------------------------------------------------------------------------------------------- curation


def _load_curation(path: str) -> View:
    report_path = os.path.join(path, REPORT)
    try:
        with open(report_path, encoding="utf-8") as fh:
            report = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TTScaleError(f"{report_path}: not a JSON curation report ({exc}); rerun ttscale curate") from exc
    if not isinstance(report, dict) or not isinstance(report.get("stages"), list):
        raise TTScaleError(f"{report_path}: not a curation report (no 'stages' list); rerun ttscale curate")
    for i, s in enumerate(report["stages"]):
        missing = [k for k in ("stage", "in", "out", "dropped") if not isinstance(s, dict) or k not in s]
        if missing:
            raise TTScaleError(f"{report_path}: stage {i} has no {', '.join(missing)}; rerun ttscale curate")
    manifest = None
    if os.path.exists(os.path.join(path, MANIFEST)):
        try:
            with open(os.path.join(path, MANIFEST), encoding="utf-8") as fh:
                manifest = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError):
            manifest = None
    warnings = [] if manifest is not None else [f"{MANIFEST} is missing or unreadable: the run's config is not shown"]
    return View("curation", f"curation · {os.path.basename(os.path.abspath(path))} · {report.get('rows', '?')} rows", path,
                {"report": report, "manifest": manifest}, warnings)
