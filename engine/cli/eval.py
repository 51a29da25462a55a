"""``ttscale eval``: run an evaluation into a directory, and ``ttscale eval report DIR`` to redraw its report.

    ttscale eval --dataset synthetic --limit 30 --method budget majority --budgets 16 32 64 --n 1 4 16 --out runs/syn
    ttscale eval report runs/syn
    accelerate launch --multi_gpu --num_processes 2 -m engine.cli eval ... --out runs/syn    # sharded, same files

Flags map one-to-one to :class:`benchmarks.eval.config.EvalConfig` fields (model and format flags are the shared ones of
``engine/cli/__init__.py``). Everything is checked — configuration, dataset, output directory — before a model loads.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.eval.config import DEFAULT_BUDGETS, DEFAULT_N, METHODS, EvalConfig, config_fields
from benchmarks.eval.report import report
from benchmarks.eval.runner import processes, run_eval
from engine.cli.common import add_format_args, add_model_args
from engine.errors import TTScaleError

# EvalConfig fields whose flags come from engine/cli/__init__.py's shared helpers.
SHARED = ("model", "dtype", "quantization", "format", "think_start", "think_end", "template", "system")


def _flag(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _add_config_flag(group, f) -> None:
    kind = str(f.type).replace(" ", "")
    text = f.metadata.get("help", "")
    if f.default not in (None, False) and "default" not in text:
        shown = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        text += f" (default {shown})"
    kwargs = {"dest": f.name, "help": text.replace("%", "%%"), "default": argparse.SUPPRESS}
    if kind == "bool":
        group.add_argument(_flag(f), action="store_true", **kwargs)
    elif kind.startswith("tuple[int"):
        group.add_argument(_flag(f), nargs="*", type=int, metavar="K", **kwargs)
    elif kind.startswith("tuple[str"):
        group.add_argument(_flag(f), nargs="*", metavar="NAME", **kwargs)
    elif kind.startswith("int"):
        group.add_argument(_flag(f), type=int, metavar="K", **kwargs)
    elif kind.startswith("float"):
        group.add_argument(_flag(f), type=float, metavar="X", **kwargs)
    else:
        group.add_argument(_flag(f), metavar="S", **kwargs)


def add_parser(sub) -> None:
    """Register ``eval`` (and ``eval report``) on the ``ttscale`` subcommands."""
    p = sub.add_parser(
        "eval", help="evaluate test-time scaling methods on a benchmark (accuracy vs thinking tokens and vs N)",
        description="Run methods swept over their compute knob on a benchmark; write samples.jsonl, metrics.json, "
                    "scaling.png and summary.md into --out. A killed run started again with the same --out resumes "
                    "where it stopped. Sharded over processes by `accelerate launch` (on CPU: "
                    "`accelerate launch --multi_gpu --num_processes 2 -m engine.cli eval ...`, or torchrun).",
        epilog=f"methods: {', '.join(METHODS)}. Defaults: --budgets {' '.join(map(str, DEFAULT_BUDGETS))}, "
               f"--n {' '.join(map(str, DEFAULT_N))}. Redraw a report: ttscale eval report DIR")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (created; an existing one is resumed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("evaluation (benchmarks.eval.config.EvalConfig)")
    for f in config_fields():
        if f.name not in SHARED:
            _add_config_flag(g, f)
    add_model_args(p)
    add_format_args(p)
    p.set_defaults(func=run, eval_command=None)
    rsub = p.add_subparsers(dest="eval_command", metavar="report DIR")
    r = rsub.add_parser("report", help="redraw metrics.json, scaling.png and summary.md from DIR/samples.jsonl")
    r.add_argument("dir", metavar="DIR")
    r.set_defaults(func=run_report)


def config_from_args(args):
    """An :class:`EvalConfig` from parsed flags (absent flags keep the dataclass defaults). Refuses what it refuses."""
    values = {f.name: getattr(args, f.name) for f in config_fields() if hasattr(args, f.name)}
    for name, value in list(values.items()):
        if isinstance(value, list):
            values[name] = tuple(value)
    return EvalConfig(**values)


def _tables(summary: str) -> str:
    """The summary without its definitions (what the terminal shows after a run)."""
    return summary.split("\nDefinitions:", 1)[0].rstrip() + "\n"


def run(args) -> int:
    """``ttscale eval``: validate, run (or resume) on this process's shard, and print the summary on rank 0."""
    config = config_from_args(args)
    if not args.out:
        raise TTScaleError("--out is missing; give the directory to write samples.jsonl and the report into")
    procs = processes(args.device)
    result = run_eval(config, args.out, device=procs.device, device_map=args.device_map, attn=args.attn,
                      trust_remote_code=args.trust_remote_code, progress=not args.no_progress, procs=procs)
    if procs.rank == 0:
        with open(result.paths["summary"], encoding="utf-8") as fh:
            print(_tables(fh.read()))
        print(f"ttscale: {result.rows_written} new rows in {result.wall_s:.0f} s; wrote "
              + ", ".join(result.paths[k] for k in ("metrics", "figure", "summary")), file=sys.stderr)
    return 0


def run_report(args) -> int:
    """``ttscale eval report DIR``: recompute metrics, figure and summary from the rows alone."""
    paths = report(args.dir)
    with open(paths["summary"], encoding="utf-8") as fh:
        print(_tables(fh.read()))
    print("ttscale: wrote " + ", ".join(paths[k] for k in ("metrics", "figure", "summary")), file=sys.stderr)
    return 0
