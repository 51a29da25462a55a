"""``ttscale curate``: the s1K curation pipeline (``curation/pipeline.py``) from the command line.

    ttscale curate --config curate.yaml --out runs/s1k            # every stage, then dataset, report, manifest
    ttscale curate traces --config curate.yaml --out runs/s1k     # one stage on the previous stage's output

Flags are :class:`~engine.cli.flags.CurateOptions`; ``--config FILE.yaml`` holds a section per stage. Everything that
can be checked is checked before any stage runs: the sections and their settings, the run directory, the graders.
"""

from __future__ import annotations

import dataclasses
import sys

from benchmarks.eval.runner import processes
from curation.pipeline import PipelineConfig, check_before_work, pipeline_config, run_stages, write_run_outputs
from curation.schema import STAGES
from curation.workdir import WorkDir
from engine.cli.common import check_output_dir
from engine.cli.flags import CURATE, CurateOptions


def _config(args, opts: CurateOptions) -> PipelineConfig:
    """The pipeline config of the file's sections, with the flags applied over it."""
    sections = CURATE.sections_of(args)
    if opts.sources:  # added to the file's sources before the pool section is checked
        pool = dict(sections.get("pool") or {})
        pool["sources"] = list(pool.get("sources") or []) + list(opts.sources)
        sections = {**sections, "pool": pool}
    config = pipeline_config(sections)
    if opts.eval_sets:
        config = dataclasses.replace(config, decontaminate=dataclasses.replace(config.decontaminate, eval_sets=opts.eval_sets))
    if opts.k is not None:
        config = dataclasses.replace(config, select=dataclasses.replace(config.select, k=opts.k))
    return config


def run(args) -> int:
    """``ttscale curate [STAGE]``: check the config, the run directory and the graders, then run every stage (or one)
    and, once select is done, write the dataset, report and manifest. Under ``accelerate launch`` the traces and
    difficulty stages share their per-question work over the processes; rank 0 writes. Refuses what the stages refuse."""
    opts = CURATE.build(args)[CurateOptions]
    config = _config(args, opts)
    stages = (args.curate_stage,) if args.curate_stage else STAGES
    check_output_dir(opts.out, "--out")
    check_before_work(config, stages)
    procs = processes()
    if procs.note:
        print(f"ttscale: {procs.note}", file=sys.stderr)
    work = WorkDir(opts.out)
    run_stages(config, work, stages, procs, progress=opts.progress and procs.rank == 0)
    if "select" in stages and procs.rank == 0:
        report = write_run_outputs(config, work)
        for s in report["stages"]:
            reasons = ", ".join(f"{r} {n}" for r, n in s["reasons"].items()) or "-"
            print(f"{s['stage']:>13}: {s['in']:>7} in {s['out']:>7} out   dropped: {reasons}")
        print(f"ttscale: wrote {report['rows']} rows to {opts.out}/dataset (datasets.load_from_disk) and "
              f"{opts.out}/s1k.parquet; report {opts.out}/summary.md, manifest {opts.out}/manifest.json", file=sys.stderr)
    return 0
