"""The evaluation runner: a benchmark, a set of methods each swept over its compute knob, one row per (problem, setting).

    config = EvalConfig(dataset="synthetic", limit=30, methods=("budget", "majority"), budgets=(16, 32, 64), n=(1, 4, 16))
    run_eval(config, "runs/synthetic")      # samples.jsonl, metrics.json, scaling.png, summary.md in runs/synthetic

Phases (every process runs 1-4 on the same inputs, so they agree on the work without talking):

    1. plan     the problems and, per method, its settings (``method_settings``); the work is cut into *units*: a batch
                of problems under one setting (sequential methods, beam, DVTS), or a batch of problems whose pool of
                max(N) samples serves majority / best-of-n / weighted at every N (``plan_units``)
    2. open     ``RunStore``: refuses another configuration in the directory, reads the rows already done; then a
                barrier, so that every process sees the same done set before anyone appends
    3. shard    the units not yet complete, round robin over processes (``store.shard``); a unit is deterministic in
                its inputs (fixed batch, seed derived from the unit), so a unit re-run after a kill, or by another
                number of processes, writes exactly the rows it wrote before, and ``append`` skips the ones on disk
    4. run      unit by unit (``methods.run_unit``), appending each row as it is graded; progress bar with ETA on rank 0
    5. finish   barrier; rank 0 derives the compute-optimal rows, merges the shards into ``samples.jsonl`` and writes
                the report (``benchmarks.report``)

Multi-process: launched by ``accelerate launch`` (or ``torchrun``) the runner takes rank and world from
``accelerate.PartialState`` (gloo on CPU, one GPU per process otherwise). The configuration fingerprint never holds the
output path, the device or the number of processes, so a run may be resumed with another process count.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta

import torch
from tqdm.auto import tqdm

from benchmarks.data.datasets import load_dataset_rows
from benchmarks.eval import methods
from benchmarks.eval.config import EvalConfig, Unit, plan_units
from benchmarks.eval.report import report
from benchmarks.eval.store import RunStore, shard


# ------------------------------------------------------------------------------------------- processes
@dataclass
class Processes:
    """This process's rank, the world size, a barrier and the device to load the model on."""

    rank: int = 0
    world: int = 1
    device: str = "auto"
    barrier: object = None
    note: str | None = None

    def wait(self) -> None:
        """Block until every process got here (no-op for one process)."""
        if self.barrier is not None:
            self.barrier()


def processes(device: str = "auto") -> Processes:
    """Rank and world from ``accelerate`` when launched with several processes (``accelerate launch``, ``torchrun``),
    else a single process. On CPU the processes talk over gloo; on GPUs each takes the GPU of its local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        note = None
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and os.environ.get("MASTER_ADDR"):
            # `accelerate launch --cpu --num_processes N` needs mpirun for N > 1; without it accelerate starts one process.
            note = ("accelerate started a single process (its --cpu launcher needs MPI for more); for CPU processes use "
                    "`accelerate launch --multi_gpu --num_processes N` (torchrun) or `torchrun --nproc_per_node N`")
        return Processes(device=device, note=note)

    from accelerate import PartialState  # deferred: only multi-process runs start a process group

    cpu = device == "cpu" or not torch.cuda.is_available()
    # A rank that finishes its shard early waits at the final barrier; allow long evaluations.
    state = PartialState(cpu=cpu, timeout=timedelta(hours=48))
    dev = device if device not in ("auto", "cuda") else ("cpu" if cpu else str(state.device))
    return Processes(rank=state.process_index, world=state.num_processes, device=dev, barrier=state.wait_for_everyone)


# --------------------------------------------------------------------------------------------- the run
@dataclass
class EvalResult:
    """What a run did: new rows (on rank 0 those of every process, after the merge; elsewhere this process's own),
    units run here, and (rank 0) the report's paths."""

    rows_written: int = 0
    units_run: int = 0
    units_total: int = 0
    paths: dict = field(default_factory=dict)
    wall_s: float = 0.0


def run_eval(config: EvalConfig, out_dir: str, *, model=None, tokenizer=None, device: str = "auto", device_map=None,
             attn: str = "auto", trust_remote_code: bool = False, progress: bool = True, procs: Processes | None = None,
             log=None) -> EvalResult:
    """Run (or resume) an evaluation into ``out_dir`` and, on rank 0, write the merged rows and the report.

    ``model``/``tokenizer`` skip loading ``config.model`` (tests pass a tiny model; ``config.model`` is then only a
    label). The model is loaded only when this process has work left. Refuses (before loading anything) what
    :class:`EvalConfig`, the dataset loader and :class:`RunStore` refuse: unknown datasets, files with missing
    fields, and an output directory holding another configuration.
    """
    t0 = time.perf_counter()
    log = log or (lambda msg: print(f"ttscale: {msg}", file=sys.stderr))
    methods.check_scorer(config)
    procs = procs or processes(device)
    if procs.note:
        log(procs.note)
    problems = load_dataset_rows(config.dataset, limit=config.limit, field_map=config.fields, seed=config.seed)
    units = plan_units(config, problems)
    store = RunStore(out_dir, config.to_dict(), procs.rank, procs.world)
    rows_before = len(store.done)
    procs.wait()  # everyone has read the same done set before anyone appends
    todo = [u for u in units if not all(k in store.done for k in u.keys())]
    mine = shard(todo, procs.rank, procs.world)
    result = EvalResult(units_total=len(units))
    if procs.rank == 0:
        done_units = len(units) - len(todo)
        log(f"{len(problems)} problems, {len(units)} units of work ({done_units} already done) over {procs.world} "
            f"process{'es' if procs.world > 1 else ''}; writing to {out_dir}")
    try:
        if mine:
            ctx = methods.Context.build(config, model=model, tokenizer=tokenizer, device=procs.device,
                                             device_map=device_map, attn=attn, trust_remote_code=trust_remote_code)
            if procs.rank == 0:
                log(ctx.engine.describe())
            result.rows_written, result.units_run = _run_units(ctx, store, mine, procs, progress)
    except BaseException:
        store.close()  # every finished row is on disk already; the next run resumes from them
        raise
    if procs.rank != 0:
        store.close()
    procs.wait()  # every shard is complete and closed
    if procs.rank == 0:
        try:
            methods.derive_rows(config, store)
            result.rows_written = store.merge() - rows_before  # every process's new rows, not only rank 0's
        finally:
            store.close()
        result.paths = report(out_dir)
    result.wall_s = time.perf_counter() - t0
    return result


def _run_units(ctx, store: RunStore, units: list[Unit], procs: Processes, progress: bool) -> tuple[int, int]:
    total = sum(u.cost() for u in units)
    bar = None
    if progress and procs.rank == 0:
        who = f" (rank 0 of {procs.world}; each process has its share)" if procs.world > 1 else ""
        bar = tqdm(total=total, desc=f"eval{who}", unit="gen", dynamic_ncols=True)
    written = 0
    try:
        for unit in units:
            if bar is not None:
                bar.set_postfix_str(unit.label(), refresh=False)
            for row in methods.run_unit(ctx, unit):
                written += store.append(row)
            if bar is not None:
                bar.update(unit.cost())
    finally:
        if bar is not None:
            bar.close()
    return written, len(units)

