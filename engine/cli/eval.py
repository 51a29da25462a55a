"""``ttscale eval``: run an evaluation into a directory, and ``ttscale eval report DIR`` to redraw its report.

    ttscale eval --dataset synthetic --limit 30 --method budget majority --budgets 16 32 64 --n 1 4 16 --out runs/syn
    ttscale eval report runs/syn
    accelerate launch --multi_gpu --num_processes 2 -m engine.cli eval ... --out runs/syn    # sharded, same files

Flags map one-to-one to the fields of :class:`benchmarks.eval.config.EvalConfig`, ``ModelConfig`` (placement only) and
:class:`EvalOptions`; ``--config FILE.yaml`` takes any of them as YAML keys. Everything is checked — configuration, dataset, output directory — before a model loads.
"""

from __future__ import annotations

import os
import sys

from benchmarks.eval.config import EvalConfig
from benchmarks.eval.regrade import regrade
from benchmarks.eval.report import report
from benchmarks.eval.runner import processes, run_eval
from benchmarks.eval.store import read_samples
from engine.cli.common import check_output_dir
from engine.cli.flags import EVAL, EvalOptions
from engine.model_config import ModelConfig


def config_from_args(args) -> EvalConfig:
    """An :class:`EvalConfig` from parsed flags and ``--config`` (absent ones keep the defaults). Refuses what it refuses."""
    return EVAL.build(args, only=(EvalConfig,))[EvalConfig]


def _tables(summary: str) -> str:
    """The summary without its definitions (what the terminal shows after a run)."""
    return summary.split("\nDefinitions:", 1)[0].rstrip() + "\n"


def run(args) -> int:
    """``ttscale eval``: validate (the ``--out`` location included), run (or resume) on this process's shard, and print
    the summary on rank 0. Refuses bad flags and an unusable ``--out`` before any model loads."""
    c = EVAL.build(args)
    config, model, opts = c[EvalConfig], c[ModelConfig], c[EvalOptions]
    check_output_dir(opts.out, "--out")
    procs = processes(model.device)
    try:
        result = run_eval(config, opts.out, device=procs.device, device_map=model.device_map, attn=model.attn,
                          trust_remote_code=model.trust_remote_code, progress=opts.progress, procs=procs)
    except KeyboardInterrupt:
        if procs.rank == 0:
            kept = len(read_samples(opts.out)) if os.path.isdir(opts.out) else 0
            print(f"ttscale: interrupted; {kept} finished row{'' if kept == 1 else 's'} kept in {opts.out}; "
                  "run the same command again to resume", file=sys.stderr)
        raise
    if procs.rank == 0:
        with open(result.paths["summary"], encoding="utf-8") as fh:
            print(_tables(fh.read()))
        print(f"ttscale: {result.rows_written} new rows in {result.wall_s:.0f} s; wrote "
              + ", ".join(result.paths[k] for k in ("metrics", "figure", "summary")), file=sys.stderr)
    return 0


def run_report(args) -> int:
    """``ttscale eval report DIR [--regrade]``: recompute metrics, figure and summary from the rows alone; with
    ``--regrade``, grade the rows again first and print what changed. Refuses what :func:`regrade` refuses."""
    if args.regrade:
        done = regrade(args.dir)
        paths = done.paths
        _print_changes(done)
    else:
        paths = report(args.dir)
    with open(paths["summary"], encoding="utf-8") as fh:
        print(_tables(fh.read()))
    print("ttscale: wrote " + ", ".join(paths[k] for k in ("metrics", "figure", "summary")), file=sys.stderr)
    return 0


def _print_changes(done, shown: int = 20) -> None:
    """The regrade's counts and its first ``shown`` changed rows, on stderr (every change is in regrade.json)."""
    kept = f"; {done.kept} parallel rows kept as graded (the run stored no sample texts)" if done.kept else ""
    print(f"ttscale: regraded {done.regraded} of {done.rows} rows: {len(done.changed)} changed{kept}; "
          f"every change is in {done.paths['regrade']}", file=sys.stderr)
    for c in done.changed[:shown]:
        setting = ", ".join(f"{k}={v}" for k, v in c["setting"].items()) or "default"
        before, after = c["before"], c["after"]
        print(f"  {c['problem_id']} {c['method']} {setting} (gold {c['gold']}): {before['extracted']!r} "
              f"{'right' if before['correct'] else 'wrong'} -> {after['extracted']!r} {'right' if after['correct'] else 'wrong'}",
              file=sys.stderr)
    if len(done.changed) > shown:
        print(f"  ... and {len(done.changed) - shown} more", file=sys.stderr)
