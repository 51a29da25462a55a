"""The report of an evaluation run: ``metrics.json``, ``scaling.png`` and ``summary.md``, redrawn from the rows alone.

    report(OUT)   reads OUT/samples.jsonl (plus unmerged shards of a run still going) and OUT/config.json,
                  and writes OUT/metrics.json, OUT/scaling.png, OUT/summary.md      (``ttscale eval report OUT``)

One *run* in s1's sense is one (method, setting): its accuracy with a 95% Wilson interval, and its x value, the
mean of the rows' ``compute`` (average thinking tokens for sequential methods, N for parallel ones).
Per method, s1's Control / Scaling / Performance (``benchmarks.eval.metrics``) are computed over its runs. Control
uses each setting's ``max_thinking_tokens`` / ``min_thinking_tokens`` as that run's bounds (None when a method
has no bounds, as for parallel methods); for parallel methods Scaling is per added sample of N. A parallel
method swept over more than ``n`` (beam over m) gets one curve and one metrics entry per value: ``beam (m=4)``.

The figure has two panels, as in s1 Fig. 4 and the search-and-learn plots: accuracy against average thinking
tokens (sequential methods) and accuracy against N on a log2 axis (parallel methods); error bars are the 95%
intervals, and each point is labelled with its setting. ``summary.md`` tabulates exactly the plotted points.
"""

from __future__ import annotations

import os
from collections import defaultdict

from benchmarks.eval.metrics import Run, accuracy, scaling_metrics
from benchmarks.eval.store import PARALLEL_METHODS, SEQUENTIAL_METHODS, canonical_json, natural_key, read_config, read_samples
from engine.errors import TTScaleError
from engine.jsonl import write_json_atomic

METRICS = "metrics.json"
FIGURE = "scaling.png"
SUMMARY = "summary.md"
_METHOD_ORDER = SEQUENTIAL_METHODS + PARALLEL_METHODS

DEFINITIONS = {
    "accuracy": "fraction of problems whose extracted answer is correct; ci_low/ci_high: 95% Wilson interval",
    "x": "mean of the rows' compute: average thinking tokens (sequential) or N (parallel)",
    "control": "s1 eq. 1: fraction of a method's runs whose x lies within the run's max/min_thinking_tokens; null without bounds",
    "scaling": "s1 eq. 2: mean slope (f(b)-f(a))/(b-a) over pairs of runs with a<b, accuracy as a fraction per unit of x; "
               "null with fewer than two distinct x",
    "scaling_x100": "100 * scaling: percentage points of accuracy per thinking token (per sample of N for parallel methods)",
    "performance": "s1 eq. 3: best accuracy over the method's runs",
    "within_budget": "fraction of samples whose own thinking_tokens respect the setting's bounds (sample-level control)",
}


def setting_label(setting: dict) -> str:
    """A short human label: ``max_thinking_tokens=256`` or ``n=4, m=4``; ``default`` for an empty setting."""
    return ", ".join(f"{k}={v}" for k, v in sorted(setting.items())) or "default"


def _point_label(setting: dict) -> str:
    if len(setting) == 1:
        return str(next(iter(setting.values())))
    return setting_label(setting)


def _mean(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(values) / len(values) if values else None


def aggregate(rows: list[dict]) -> list[dict]:
    """One entry per (method, setting): problems, accuracy with its interval, x, token means, wall time.

    Refuses no rows, and a (method, setting) whose rows disagree on ``scaling``.
    """
    if not rows:
        raise TTScaleError("the run has no sample rows yet; run the evaluation (or wait for its first rows) before reporting")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], canonical_json(row["setting"]))].append(row)
    out = []
    for (method, key), group in groups.items():
        kinds = {r["scaling"] for r in group}
        if len(kinds) > 1:
            raise TTScaleError(f"method {method} setting {key} has rows marked both sequential and parallel; fix the runner's rows")
        setting = group[0]["setting"]
        acc = accuracy(r["correct"] for r in group)
        lo, hi = setting.get("min_thinking_tokens"), setting.get("max_thinking_tokens")
        within = None
        if (lo is not None or hi is not None) and all(isinstance(r.get("thinking_tokens"), int) for r in group):
            within = sum((lo is None or r["thinking_tokens"] >= lo) and (hi is None or r["thinking_tokens"] <= hi)
                         for r in group) / len(group)
        out.append({
            "method": method, "scaling": kinds.pop(), "setting": setting, "label": setting_label(setting),
            "problems": len(group), "correct": acc.correct, "accuracy": acc.value, "ci_low": acc.low, "ci_high": acc.high,
            "x": _mean([r["compute"] for r in group]),
            "thinking_tokens": _mean([r.get("thinking_tokens") for r in group]),
            "answer_tokens": _mean([r.get("answer_tokens") for r in group]),
            "wall_s": sum(r.get("wall_s") or 0.0 for r in group),
            "a_min": lo, "a_max": hi, "within_budget": within,
            "_ids": sorted(str(r["problem_id"]) for r in group),
        })
    rank = {m: i for i, m in enumerate(_METHOD_ORDER)}
    out.sort(key=lambda s: (rank.get(s["method"], len(rank)), s["method"], natural_key(canonical_json(s["setting"]))))
    _assign_series(out)
    return out


def _assign_series(settings: list[dict]) -> None:
    """Name the curve of each setting: its method, or ``beam (m=4)`` when a parallel method was also swept over
    something other than ``n`` (one curve per value, so a sweep over m does not zigzag on one line)."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for s in settings:
        by_method[s["method"]].append(s)
    for method, group in by_method.items():
        rest = [{k: v for k, v in s["setting"].items() if k != "n"} for s in group]
        split = group[0]["scaling"] == "parallel" and len({canonical_json(r) for r in rest}) > 1
        for s, r in zip(group, rest):
            s["series"] = f"{method} ({setting_label(r)})" if split else method


def compute_metrics(rows: list[dict], config: dict | None = None) -> dict:
    """The content of ``metrics.json``: per-setting accuracy, per-method s1 metrics, definitions and warnings."""
    settings = aggregate(rows)
    methods, warnings = {}, []
    by_series: dict[str, list[dict]] = defaultdict(list)
    for s in settings:
        by_series[s["series"]].append(s)
    for method, group in by_series.items():
        runs = [Run(a=s["x"], f=s["accuracy"], a_min=s["a_min"], a_max=s["a_max"]) for s in group]
        m = scaling_metrics(runs)
        methods[method] = {"scaling_kind": group[0]["scaling"], "runs": m.runs, "control": m.control,
                           "scaling": m.scaling, "scaling_x100": m.scaling_x100, "performance": m.performance}
        if len({tuple(s["_ids"]) for s in group}) > 1:
            counts = ", ".join(f"{s['label']}: {s['problems']}" for s in group)
            warnings.append(f"method {method} was scored on different problem sets per setting ({counts}); "
                            "the run is probably unfinished, so resume it before comparing settings")
    all_ids = {tuple(s["_ids"]) for s in settings}
    if len(all_ids) > 1 and not warnings:
        warnings.append("methods were scored on different problem sets; compare them only after every method finished")
    for s in settings:
        del s["_ids"]
    return {"config": config, "rows": len(rows), "settings": settings, "methods": methods,
            "definitions": DEFINITIONS, "warnings": warnings}


def _title(config: dict | None) -> str:
    if not config:
        return "ttscale evaluation"
    parts = [str(config[k]) for k in ("dataset", "model") if config.get(k)]
    return " · ".join(parts) if parts else "ttscale evaluation"


def plot(metrics: dict, path: str, title: str | None = None) -> str:
    """Draw the two-panel scaling figure (sequential: accuracy vs thinking tokens; parallel: accuracy vs N, log2)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib is heavy, only the figure needs it
    from matplotlib.figure import Figure  # the object API: no pyplot state, no global backend switch
    from matplotlib.ticker import FixedLocator, NullLocator  # deferred: see above

    fig = Figure(figsize=(13, 5.2), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    names = list(dict.fromkeys(s["series"] for s in metrics["settings"]))
    colors = {m: f"C{i % 10}" for i, m in enumerate(names)}
    markers = {m: "osD^vP*Xh<>"[i % 11] for i, m in enumerate(names)}
    panels = (("sequential", "Sequential scaling", "average thinking tokens (points labelled with their setting)"),
              ("parallel", "Parallel scaling", "N (samples / beams), log2 scale"))
    for ax, (kind, heading, xlabel) in zip(axes, panels):
        pts = [s for s in metrics["settings"] if s["scaling"] == kind]
        ax.set_title(heading, fontsize=13)
        ax.set_xlabel(xlabel, fontsize=11)
        ax.set_ylabel("accuracy (%)", fontsize=11)
        ax.grid(True, alpha=0.3)
        if not pts:
            ax.text(0.5, 0.5, f"no {kind} methods in this run", ha="center", va="center", transform=ax.transAxes,
                    fontsize=11, color="0.4")
            ax.set_xticks([])
            ax.set_ylim(0, 100)
            continue
        in_panel = list(dict.fromkeys(s["series"] for s in pts))
        for i, method in enumerate(in_panel):
            group = sorted((s for s in pts if s["series"] == method), key=lambda s: s["x"])
            xs = [s["x"] for s in group]
            if kind == "parallel":  # dodge: shift each method a little along log2(N) so error bars do not hide each other
                xs = [x * 2 ** (0.05 * (i - (len(in_panel) - 1) / 2)) for x in xs]
            ys = [100 * s["accuracy"] for s in group]
            err = [[100 * (s["accuracy"] - s["ci_low"]) for s in group], [100 * (s["ci_high"] - s["accuracy"]) for s in group]]
            m = metrics["methods"][method]
            perf = f"best {100 * m['performance']:.1f}%"
            ax.errorbar(xs, ys, yerr=err, color=colors[method], marker=markers[method], markersize=6, linewidth=1.8,
                        capsize=4, label=f"{method} ({perf})")
            if kind == "sequential":
                for s, x, y in zip(group, xs, ys):
                    ax.annotate(_point_label(s["setting"]), (x, y), textcoords="offset points", xytext=(5, 5),
                                fontsize=7.5, color=colors[method])
        if kind == "parallel":
            ns = sorted({s["x"] for s in pts})
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(FixedLocator(ns))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{n:g}" for n in ns])
            if len(ns) == 1:
                ax.set_xlim(ns[0] / 2, ns[0] * 2)
        ax.set_ylim(-3, 103)
        ax.legend(fontsize=9, loc="best", framealpha=0.85)
    problems = max((s["problems"] for s in metrics["settings"]), default=0)
    fig.suptitle(f"{title or _title(metrics.get('config'))}  —  accuracy with 95% Wilson intervals, up to {problems} problems per point",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path)
    return path


def _fmt(value, spec: str = ".1f", scale: float = 1.0) -> str:
    return "–" if value is None else format(value * scale, spec)


def summary_markdown(metrics: dict, title: str | None = None) -> str:
    """The Markdown summary: the plotted points per panel, the s1 metrics per method, definitions and warnings."""
    lines = [f"# {title or _title(metrics.get('config'))}", "",
             f"{metrics['rows']} sample rows. Accuracy in %, with 95% Wilson intervals. Figure: `{FIGURE}`.", ""]
    seq = [s for s in metrics["settings"] if s["scaling"] == "sequential"]
    par = [s for s in metrics["settings"] if s["scaling"] == "parallel"]
    if seq:
        lines += ["## Sequential scaling: accuracy vs average thinking tokens", "",
                  "| method | setting | problems | avg thinking tokens | accuracy | 95% CI | within budget |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {s['method']} | {s['label']} | {s['problems']} | {_fmt(s['x'])} | {_fmt(s['accuracy'], '.1f', 100)} | "
                  f"{_fmt(s['ci_low'], '.1f', 100)}–{_fmt(s['ci_high'], '.1f', 100)} | {_fmt(s['within_budget'], '.0f', 100)} |"
                  for s in seq]
        lines.append("")
    if par:
        lines += ["## Parallel scaling: accuracy vs N", "",
                  "| method | setting | N | problems | accuracy | 95% CI | thinking tokens per problem (all N samples) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {s['method']} | {s['label']} | {s['x']:g} | {s['problems']} | {_fmt(s['accuracy'], '.1f', 100)} | "
                  f"{_fmt(s['ci_low'], '.1f', 100)}–{_fmt(s['ci_high'], '.1f', 100)} | {_fmt(s['thinking_tokens'])} |"
                  for s in par]
        lines.append("")
    lines += ["## Per-method metrics (s1 §3.2)", "",
              "| method | kind | runs | Control | Scaling ×100 (pp per unit of x) | Performance |",
              "|---|---|---:|---:|---:|---:|"]
    for name, m in metrics["methods"].items():
        lines.append(f"| {name} | {m['scaling_kind']} | {m['runs']} | {_fmt(m['control'], '.0f', 100)}{'%' if m['control'] is not None else ''} | "
                     f"{_fmt(m['scaling_x100'], '.4g')} | {_fmt(m['performance'], '.1f', 100)} |")
    lines += ["", "Definitions:", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()]
    if metrics["warnings"]:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in metrics["warnings"]]
    return "\n".join(lines) + "\n"


def report(out_dir: str, title: str | None = None) -> dict[str, str]:
    """Recompute ``metrics.json``, ``scaling.png`` and ``summary.md`` in ``out_dir`` from its rows; returns their paths.

    Refuses a directory that does not exist or holds no rows.
    """
    rows = read_samples(out_dir)
    metrics = compute_metrics(rows, read_config(out_dir))
    paths = {"metrics": os.path.join(out_dir, METRICS), "figure": os.path.join(out_dir, FIGURE),
             "summary": os.path.join(out_dir, SUMMARY)}
    write_json_atomic(paths["metrics"], metrics, indent=2)
    plot(metrics, paths["figure"], title)
    with open(paths["summary"], "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(metrics, title))
    return paths
