"""The s1 recipe in miniature (``ttscale recipe s1-mini``): curate → SFT → budget-forced evaluation of base and SFT.

    result = run_s1_mini(S1MiniOptions(out="runs/s1-mini"))
    result["models"]["sft"]["budget"]   -> {"control": 1.0, "scaling_x100": ..., "performance": ..., "points": [...]}

One run directory holds every step, each resumed or skipped when the run is started again:

    OUT/recipe.json              the options that decide the results (a run with other options is refused)
    OUT/heldout.jsonl            the held-out problems (the evaluation set; the curation decontaminates against it)
    OUT/curate/                  the curation run (``ttscale curate``'s layout): pool of synthetic arithmetic questions,
                                 decontamination against the held-out set, teacher traces with slips fixed after
                                 "Wait", quality, s1's difficulty filter with the base model as grader, selection
    OUT/sft/                     the fine-tuned model (safetensors + tokenizer), train_log.jsonl, checkpoints
    OUT/eval/base, OUT/eval/sft  ``ttscale eval`` runs: budget forcing over the budgets and over num_ignore
    OUT/results.json             per model: the budget sweep's and the Wait sweep's points, s1's Control / Scaling /
                                 Performance of the budget sweep, the stages' wall times
    OUT/s1_mini.png, summary.md  accuracy against average thinking tokens, base against SFT; the table

Why the task is synthetic arithmetic: a 135M model learns an exact step-by-step procedure from a few hundred traces on
a CPU, every answer is checked exactly, and the teacher plants slips that the trace fixes after "Wait" — the habit
budget forcing's "Wait" relies on (REFERENCE §1). The teacher's attempt is the bare answer ("bare" style), so all the
computing happens while thinking and the thinking budget bounds it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from benchmarks.data.datasets import load_dataset_rows
from benchmarks.eval.config import EvalConfig
from benchmarks.eval.metrics import Run, scaling_metrics
from benchmarks.eval.runner import run_eval
from curation.decontam import DecontamConfig
from curation.difficulty import DifficultyConfig
from curation.diversity import DiversityConfig
from curation.pipeline import PipelineConfig, TraceStep, run_pipeline
from curation.pool import PoolConfig
from curation.select import SelectionConfig
from curation.traces import TraceConfig
from engine.errors import TTScaleError
from engine.jsonl import write_json_atomic, write_jsonl_atomic
from train.config import SFTOptions
from train.recipe_config import S1MiniOptions
from train.sft import last_checkpoint, train_sft

OPTIONS_FILE = "recipe.json"
RESULTS_FILE = "results.json"
FIGURE_FILE = "s1_mini.png"
SUMMARY_FILE = "summary.md"
SFT_DONE = "sft_report.json"  # written into OUT/sft when training finished (the model there is final)
MODELS = ("base", "sft")
GRADER_THINKING = 16  # the difficulty filter's thinking cap: s1's graders answered without a thinking budget
SAVE_STEPS = 10  # a checkpoint every 10 optimizer steps (~1.6 GB for 135M with AdamW's state; only the last is kept)


def paths(out: str) -> dict[str, str]:
    """Every path of a run directory, by name."""
    return {"options": os.path.join(out, OPTIONS_FILE), "heldout": os.path.join(out, "heldout.jsonl"),
            "curate": os.path.join(out, "curate"), "sft": os.path.join(out, "sft"),
            "eval_base": os.path.join(out, "eval", "base"), "eval_sft": os.path.join(out, "eval", "sft"),
            "results": os.path.join(out, RESULTS_FILE), "figure": os.path.join(out, FIGURE_FILE),
            "summary": os.path.join(out, SUMMARY_FILE), "wall": os.path.join(out, "wall_s.json")}


def check_run_dir(options: S1MiniOptions) -> None:
    """Refuse, in one sentence, a run directory that holds something else: a file, a non-empty directory that is not
    an s1-mini run, or an s1-mini run with other result-deciding options (naming the first that differs)."""
    out = options.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise TTScaleError(f"--out {out} is a file; give a directory (new, or an s1-mini run to resume)")
    if not os.path.isdir(out) or not os.listdir(out):
        return
    path = paths(out)["options"]
    if not os.path.isfile(path):
        raise TTScaleError(f"--out {out} is a non-empty directory that is not an s1-mini run (no {OPTIONS_FILE}); "
                           "give a new directory")
    try:
        with open(path, encoding="utf-8") as f:
            before = json.load(f)
    except (OSError, ValueError) as exc:
        raise TTScaleError(f"{path} cannot be read ({exc}); give a new --out directory") from None
    now = options.results_settings()
    for key in now:
        if before.get(key) != now[key]:
            raise TTScaleError(f"--out {out} is an s1-mini run with {key}={before.get(key)!r}, not {now[key]!r}; "
                               "give a new directory to change it, or the same options to resume")


def write_heldout(options: S1MiniOptions, path: str) -> int:
    """Write the held-out problems (``id``, ``question``, ``answer``) as JSONL; returns their number."""
    problems = load_dataset_rows(options.eval_set, limit=options.eval_problems, seed=options.eval_seed)
    return write_jsonl_atomic(path, ({"id": p.id, "question": p.question, "answer": p.answer} for p in problems))


def pipeline_config(options: S1MiniOptions, heldout: str) -> PipelineConfig:
    """The curation run of the recipe: the synthetic pool, decontamination against the held-out file, teacher traces
    (bare answers, slips at ``slip_rate``), s1's difficulty filter with the base model as grader, selection of ``k``."""
    return PipelineConfig(
        pool=PoolConfig(sources=tuple(options.pool_sources())),
        decontaminate=DecontamConfig(eval_sets=(heldout,)),
        traces=(TraceStep(TraceConfig(source="teacher", slip_rate=options.slip_rate, check_rate=options.check_rate,
                                      seed=options.seed, answer_style="bare")),),
        difficulty=DifficultyConfig(graders=(options.model,), samples=1, max_thinking_tokens=GRADER_THINKING,
                                    max_answer_tokens=options.max_answer_tokens, batch_size=2 * options.batch),
        diversity=DiversityConfig(method="offline"),
        select=SelectionConfig(k=options.k, method=options.select, seed=options.seed),
    )


def sft_options(options: S1MiniOptions, data: str, output_dir: str) -> SFTOptions:
    """The fine-tuning run: s1's schedule and optimiser with the recipe's learning rate, epochs and batches."""
    return SFTOptions(model=options.model, data=data, output_dir=output_dir, format=options.format,
                      learning_rate=options.learning_rate, epochs=options.epochs, global_batch=options.global_batch,
                      batch_size=options.batch_size, max_length=1024, gradient_checkpointing=False,
                      seed=options.seed, lora=options.lora, save_steps=SAVE_STEPS, save_total_limit=1)


def eval_config(options: S1MiniOptions, model: str) -> EvalConfig:
    """The evaluation of one model: budget forcing over ``budgets`` and over ``num_ignore`` on the held-out problems."""
    return EvalConfig(dataset=options.eval_set, limit=options.eval_problems, seed=options.eval_seed,
                      methods=("budget",), budgets=options.budgets, num_ignore=options.num_ignore,
                      ignore_cap=options.ignore_cap, max_answer_tokens=options.max_answer_tokens,
                      batch_size=options.batch, model=model, format=options.format)


def _train(options: S1MiniOptions, data: str, sft_dir: str, log) -> dict:
    """Fine-tune, reuse a finished fine-tuning, or resume a killed one from its last checkpoint (one killed before
    its first checkpoint starts again)."""
    done = os.path.join(sft_dir, SFT_DONE)
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as f:
            log(f"sft: done already ({sft_dir})")
            return json.load(f)
    resume = last_checkpoint(sft_dir) if os.path.isdir(sft_dir) else None
    if resume:
        log(f"sft: resuming from {resume}")
    elif os.path.isdir(sft_dir):  # killed before its first checkpoint: nothing there is worth keeping
        log(f"sft: {sft_dir} holds an unfinished run without a checkpoint; training again")
        shutil.rmtree(sft_dir)
    report = train_sft(sft_options(options, data, sft_dir), progress=options.progress, resume=bool(resume))
    write_json_atomic(done, report)
    return report


def sweep_points(metrics: dict) -> tuple[list[dict], list[dict]]:
    """The budget sweep's and the Wait sweep's points of an eval run's ``metrics.json``, each sorted."""
    budget, wait = [], []
    for s in metrics["settings"]:
        point = {"setting": s["setting"], "accuracy": s["accuracy"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                 "thinking_tokens": s["thinking_tokens"], "problems": s["problems"], "a_max": s["a_max"],
                 "within_budget": s["within_budget"]}
        (wait if "num_ignore" in s["setting"] else budget).append(point)
    budget.sort(key=lambda p: p["setting"]["max_thinking_tokens"])
    wait.sort(key=lambda p: p["setting"]["num_ignore"])
    return budget, wait


def summarise_model(metrics: dict) -> dict:
    """s1's metrics of one model's budget sweep (Control against each budget, Scaling, Performance) and its points."""
    budget, wait = sweep_points(metrics)
    if not budget:
        raise TTScaleError("the evaluation has no budget-sweep rows; run it to the end before summarising")
    m = scaling_metrics([Run(a=p["thinking_tokens"], f=p["accuracy"], a_max=p["a_max"]) for p in budget])
    return {"budget": {"control": m.control, "scaling": m.scaling, "scaling_x100": m.scaling_x100,
                       "performance": m.performance, "points": budget},
            "wait": {"points": wait}}


def plot_recipe(results: dict, path: str) -> str:
    """Accuracy against average thinking tokens: each model's budget sweep as a line, its Wait sweep as points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib is heavy, only the figure needs it
    from matplotlib.figure import Figure  # the object API: no pyplot state

    fig = Figure(figsize=(8.5, 5.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, name in enumerate(MODELS):
        model = results["models"].get(name)
        if not model:
            continue
        color = f"C{i}"
        b = model["budget"]
        xs = [p["thinking_tokens"] for p in b["points"]]
        ys = [100 * p["accuracy"] for p in b["points"]]
        err = [[100 * (p["accuracy"] - p["ci_low"]) for p in b["points"]], [100 * (p["ci_high"] - p["accuracy"]) for p in b["points"]]]
        label = f"{name}: budget forcing (Control {100 * (b['control'] or 0):.0f}%, Scaling {b['scaling_x100'] or 0:.2f}, best {100 * b['performance']:.0f}%)"
        ax.errorbar(xs, ys, yerr=err, color=color, marker="o", linewidth=1.8, capsize=4, label=label)
        for p, x, y in zip(b["points"], xs, ys):
            ax.annotate(f"≤{p['setting']['max_thinking_tokens']}", (x, y), textcoords="offset points", xytext=(4, -12),
                        fontsize=7.5, color=color)
        w = model["wait"]["points"]
        if w:
            ax.plot([p["thinking_tokens"] for p in w], [100 * p["accuracy"] for p in w], linestyle=":", marker="s",
                    color=color, alpha=0.8, label=f"{name}: ignore the first k ends ('Wait')")
            for p in w:
                ax.annotate(f"Wait×{p['setting']['num_ignore']}", (p["thinking_tokens"], 100 * p["accuracy"]),
                            textcoords="offset points", xytext=(4, 5), fontsize=7.5, color=color)
    ax.set_xlabel("average thinking tokens")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-3, 103)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", framealpha=0.85)
    ax.set_title(results.get("title", "s1-mini"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return path


def summary_markdown(results: dict) -> str:
    """The results as Markdown: one row per (model, setting), then s1's metrics per model."""
    lines = [f"# {results.get('title', 's1-mini')}", "", "| model | setting | accuracy | avg thinking tokens | within budget |",
             "|---|---|---:|---:|---:|"]
    for name in MODELS:
        model = results["models"].get(name)
        if not model:
            continue
        for p in model["budget"]["points"] + model["wait"]["points"]:
            s = p["setting"]
            label = f"num_ignore={s['num_ignore']}" if "num_ignore" in s else f"budget {s['max_thinking_tokens']}"
            within = "–" if p["within_budget"] is None else f"{100 * p['within_budget']:.0f}%"
            lines.append(f"| {name} | {label} | {100 * p['accuracy']:.1f}% | {p['thinking_tokens']:.1f} | {within} |")
    lines += ["", "| model | Control | Scaling (pp/token) | Performance |", "|---|---:|---:|---:|"]
    for name in MODELS:
        b = results["models"].get(name, {}).get("budget")
        if b:
            control = "–" if b["control"] is None else f"{100 * b['control']:.0f}%"
            scale = "–" if b["scaling_x100"] is None else f"{b['scaling_x100']:.3f}"
            lines.append(f"| {name} | {control} | {scale} | {100 * b['performance']:.1f}% |")
    timings = results.get("wall_s") or {}
    if timings:
        lines += ["", "Wall time (summed over the calls that did the work): " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f", total {sum(timings.values()) / 60:.1f} min"]
    return "\n".join(lines) + "\n"


def _read_wall(path: str) -> dict[str, float]:
    try:
        with open(path, encoding="utf-8") as f:
            return {k: float(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _add_wall(wall: dict[str, float], step: str, since: float, path: str) -> None:
    wall[step] = wall.get(step, 0.0) + time.perf_counter() - since
    write_json_atomic(path, wall)


def run_s1_mini(options: S1MiniOptions, log=None) -> dict:
    """Run (or resume) the whole recipe into ``options.out``; returns the results (also in ``OUT/results.json``).

    Refuses, before any model loads, what :func:`check_run_dir` refuses and what the stages' configs refuse; then
    whatever the curation, training and evaluation refuse. Every finished step is kept: a run started again skips
    the curation stages, the training and the evaluation rows that are done.
    """
    log = log or (lambda msg: print(f"ttscale: {msg}", file=sys.stderr))
    check_run_dir(options)
    p = paths(options.out)
    pipeline = pipeline_config(options, p["heldout"])
    sft_options(options, p["curate"], p["sft"])  # refuses bad training options now, not after the curation
    eval_config(options, options.model)
    os.makedirs(options.out, exist_ok=True)
    write_json_atomic(p["options"], options.results_settings())
    wall = _read_wall(p["wall"])  # summed over the calls that did the work (a resumed run adds its part)
    t = time.perf_counter()
    n = write_heldout(options, p["heldout"])
    log(f"1/4 curate: {len(options.train_tasks)} synthetic tasks, {n} held-out problems ({options.eval_set}) -> {p['curate']}")
    report = run_pipeline(pipeline, p["curate"], progress=options.progress, log=log)
    _add_wall(wall, "curate", t, p["wall"])
    curated = {"rows": report["rows"], "stages": report["stages"]}
    log(f"2/4 sft: {options.model} on the {report['rows']} curated traces -> {p['sft']}")
    t = time.perf_counter()
    sft = _train(options, p["curate"], p["sft"], log)
    _add_wall(wall, "sft", t, p["wall"])
    evals = {}
    for step, name, model in ((3, "base", options.model), (4, "sft", os.path.abspath(p["sft"]))):
        log(f"{step}/4 eval {name}: budgets {' '.join(map(str, options.budgets))}, num_ignore "
            f"{' '.join(map(str, options.num_ignore))} -> {p['eval_' + name]}")
        t = time.perf_counter()
        done = run_eval(eval_config(options, model), p["eval_" + name], progress=options.progress, log=log)
        _add_wall(wall, f"eval_{name}", t, p["wall"])
        with open(done.paths["metrics"], encoding="utf-8") as f:  # the metrics the run's report just wrote
            evals[name] = summarise_model(json.load(f))
    results = {"title": f"s1-mini: {options.model}, {options.eval_problems} held-out {options.eval_set} problems",
               "models": evals, "train": {k: sft.get(k) for k in ("examples", "steps", "train_loss")},
               "curation": curated, "wall_s": wall, "options": options.results_settings()}
    write_json_atomic(p["results"], results)
    plot_recipe(results, p["figure"])
    with open(p["summary"], "w", encoding="utf-8") as f:
        f.write(summary_markdown(results))
    return results

