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
    4. run      unit by unit (``eval_methods.run_unit``), appending each row as it is graded; progress bar with ETA on rank 0
    5. finish   barrier; rank 0 derives the compute-optimal rows, merges the shards into ``samples.jsonl`` and writes
                the report (``benchmarks.report``)

Multi-process: launched by ``accelerate launch`` (or ``torchrun``) the runner takes rank and world from
``accelerate.PartialState`` (gloo on CPU, one GPU per process otherwise). The configuration fingerprint never holds the
output path, the device or the number of processes, so a run may be resumed with another process count.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields

from benchmarks.store import PARALLEL_METHODS, SEQUENTIAL_METHODS, RunStore, canonical_json, row_key, shard
from engine.errors import TTScaleError

POOLED = ("majority", "best-of-n", "weighted")          # share one pool of max(N) samples per problem
STEPWISE = ("beam", "dvts")                              # one search per N
DERIVED = ("compute-optimal",)                           # rows built from the other parallel methods' rows
METHODS = SEQUENTIAL_METHODS + PARALLEL_METHODS             # PARALLEL_METHODS ends with compute-optimal
SCORED = ("best-of-n", "weighted", "beam", "dvts")       # need a PRM or verifier
CLASSES = ("short", "long")
DEFAULT_BUDGETS = (128, 256, 512)
DEFAULT_STEPS = (1, 2, 4)
DEFAULT_N = (1, 4, 16)
EVAL_SCHEMA = 1  # bump when rows of the same configuration would change meaning


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides an evaluation's rows; each field is one ``ttscale eval`` flag (STYLE §9).

    Sweeps left at None take their defaults when planned (``method_settings``); an explicitly empty sweep is refused.
    Refuses (one sentence each) a missing dataset, no or unknown methods, empty or non-positive sweeps, beam / DVTS
    N that M does not divide, compute-optimal without a scored pool, and non-positive caps and batch sizes.
    """

    dataset: str = field(default="", metadata=_help("math500, aime24, aime25, gpqa-diamond, synthetic[:task[:K]] or a .jsonl path"))
    limit: int | None = field(default=None, metadata=_help("evaluate the first K problems"))
    fields: str | None = field(default=None, metadata=_help("field mapping for a .jsonl file: question=problem,answer=answer[,id=...][,choices=...]"))
    methods: tuple[str, ...] = field(default=("budget",), metadata=_help(
        "methods to run (several allowed): " + ", ".join(METHODS), flag="--method"))
    budgets: tuple[int, ...] | None = field(default=None, metadata=_help(
        f"thinking-token budgets for budget forcing, token-conditional and rejection sampling (default {' '.join(map(str, DEFAULT_BUDGETS))})"))
    force_min: bool = field(default=False, metadata=_help("budget forcing: also set the minimum to the budget (thinking lasts exactly B tokens; 'Wait' replaces earlier ends)"))
    num_ignore: tuple[int, ...] | None = field(default=None, metadata=_help(
        "budget forcing: numbers of ignored ends of thinking ('Wait') to sweep; alone, they replace the --budgets sweep"))
    ignore_cap: int | None = field(default=None, metadata=_help("thinking cap of the --num-ignore settings (default: none, only --max-new-tokens)"))
    steps: tuple[int, ...] | None = field(default=None, metadata=_help(
        f"step-conditional: step counts N of 'Think for up to N steps.' (default {' '.join(map(str, DEFAULT_STEPS))})"))
    classes: tuple[str, ...] = field(default=CLASSES, metadata=_help("class-conditional: prompt classes, short and/or long"))
    n: tuple[int, ...] | None = field(default=None, metadata=_help(
        f"parallel methods: numbers of samples / beams N (default {' '.join(map(str, DEFAULT_N))})"))
    beam_width: int = field(default=4, metadata=_help("beam / DVTS: M (beam keeps N/M, DVTS runs N/M subtrees of M)"))
    max_steps: int = field(default=8, metadata=_help("parallel methods: steps per sample; the last runs to its end"))
    max_step_tokens: int = field(default=64, metadata=_help("parallel methods: token cap of one step"))
    temperature: float = field(default=0.8, metadata=_help("sampling temperature of the parallel methods (search-and-learn: 0.8)"))
    top_p: float = field(default=1.0, metadata=_help("top-p of the parallel methods"))
    top_k: int = field(default=0, metadata=_help("top-k of the parallel methods (0 = off)"))
    rejection_temperature: float = field(default=1.0, metadata=_help("rejection sampling temperature (s1: 1.0)"))
    max_tries: int = field(default=8, metadata=_help("rejection sampling: samples drawn per problem before giving up"))
    max_answer_tokens: int = field(default=256, metadata=_help("answer cap of every generation"))
    max_new_tokens: int = field(default=1024, metadata=_help("overall cap of generations that no thinking budget bounds (baselines, --num-ignore without --ignore-cap)"))
    parallel_max_thinking: int | None = field(default=None, metadata=_help("thinking cap of each parallel sample (budget forcing inside search)"))
    prm: str | None = field(default=None, metadata=_help("scorer for best-of-n / weighted / beam / dvts: PRM model, or module:function with --prm-protocol verifier (default: the policy itself)"))
    prm_protocol: str = field(default="rlhflow", metadata=_help("rlhflow, math-shepherd, qwen-prm or verifier"))
    pilot_n: int = field(default=4, metadata=_help("compute-optimal: samples of the pool whose mean PRM score bins the problems"))
    batch_size: int = field(default=16, metadata=_help("problems per generate call (sequential methods); part of the configuration since batches change numerics"))
    search_batch: int = field(default=4, metadata=_help("problems per search (parallel methods)"))
    seed: int = field(default=0, metadata=_help("seed of the synthetic problems, GPQA's choice order and every sampled unit"))
    model: str = field(default="smollm2-135m", metadata=_help("policy model"))
    dtype: str = field(default="auto", metadata=_help("model dtype"))
    quantization: str | None = field(default=None, metadata=_help("bitsandbytes quantisation"))
    format: str = field(default="s1", metadata=_help("thinking format"))
    think_start: str | None = field(default=None, metadata=_help("string that opens thinking"))
    think_end: str | None = field(default=None, metadata=_help("end-of-thinking delimiter"))
    template: str = field(default="auto", metadata=_help("prompt style"))
    system: str | None = field(default=None, metadata=_help("system message"))

    def __post_init__(self):
        for name in ("methods", "budgets", "num_ignore", "steps", "classes", "n"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple([value] if isinstance(value, (str, int)) else value))
        if not str(self.dataset or "").strip():
            raise TTScaleError("--dataset is missing; give math500, aime24, aime25, gpqa-diamond, synthetic or a path to a .jsonl file")
        if not self.methods:
            raise TTScaleError(f"--method is empty; give at least one of {', '.join(METHODS)}")
        for m in self.methods:
            if m not in METHODS:
                raise TTScaleError(f"--method {m!r} is unknown; use one of {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise TTScaleError(f"--method lists a method twice ({', '.join(self.methods)}); give each once")
        for flag, values, least in (("--budgets", self.budgets, 1), ("--num-ignore", self.num_ignore, 0),
                                    ("--steps", self.steps, 1), ("--n", self.n, 1)):
            if values is None:
                continue
            if not values:
                raise TTScaleError(f"{flag} is empty; give at least one value (or leave the flag out for its default)")
            for v in values:
                if not isinstance(v, int) or isinstance(v, bool) or v < least:
                    raise TTScaleError(f"{flag} value {v!r} must be an integer >= {least}")
            if len(set(values)) != len(values):
                raise TTScaleError(f"{flag} lists a value twice ({' '.join(map(str, values))}); give each once")
        if not self.classes or any(c not in CLASSES for c in self.classes):
            raise TTScaleError(f"--classes {' '.join(self.classes) or '(empty)'}: use short and/or long")
        for flag, value, least in (("--beam-width", self.beam_width, 1), ("--max-steps", self.max_steps, 1),
                                   ("--max-step-tokens", self.max_step_tokens, 1), ("--max-tries", self.max_tries, 1),
                                   ("--max-answer-tokens", self.max_answer_tokens, 1), ("--max-new-tokens", self.max_new_tokens, 1),
                                   ("--pilot-n", self.pilot_n, 1), ("--batch-size", self.batch_size, 1),
                                   ("--search-batch", self.search_batch, 1), ("--ignore-cap", self.ignore_cap, 1),
                                   ("--parallel-max-thinking", self.parallel_max_thinking, 1), ("--limit", self.limit, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise TTScaleError(f"{flag} must be an integer >= {least}, got {value!r}")
        if self.temperature <= 0 and any(m in PARALLEL_METHODS for m in self.methods):
            raise TTScaleError(f"--temperature {self.temperature}: parallel methods draw different samples, so it must be > 0 (0.8 is search-and-learn's)")
        if self.rejection_temperature <= 0 and "rejection" in self.methods:
            raise TTScaleError(f"--rejection-temperature {self.rejection_temperature}: rejection sampling needs a temperature > 0 (s1 uses 1.0)")
        for m in STEPWISE:
            if m in self.methods:
                bad = [k for k in self.ns if k % self.beam_width]
                if bad:
                    raise TTScaleError(f"--n {bad[0]} is not a multiple of --beam-width {self.beam_width}, which {m} needs "
                                       f"(it keeps N/M candidates per step); drop it or choose a --beam-width that divides every N")
        if "compute-optimal" in self.methods:
            if not any(m in self.methods for m in ("best-of-n", "weighted")):
                raise TTScaleError("--method compute-optimal bins problems by the PRM scores of a pilot drawn from the best-of-n / "
                                   "weighted pool, so add best-of-n or weighted to --method")
            if self.pilot_n > max(self.ns):
                raise TTScaleError(f"--pilot-n {self.pilot_n} is larger than the largest --n {max(self.ns)}; the pilot is the first "
                                   "samples of the pool, so lower it or add a larger N")

    # ---- resolved sweeps ---------------------------------------------------------------------------------------
    @property
    def ns(self) -> tuple[int, ...]:
        """The N values, sorted (default 1 4 16)."""
        return tuple(sorted(self.n if self.n is not None else DEFAULT_N))

    def to_dict(self) -> dict:
        """The configuration as stored in ``config.json`` and fingerprinted: every field, plus the planned settings
        of every method (so that two spellings of the same work are the same configuration, and two different plans
        never are). Holds no output path, device or process count."""
        d = asdict(self)
        for k in ("budgets", "num_ignore", "steps", "n"):
            d.pop(k)
        d["methods"] = list(self.methods)
        d["classes"] = list(self.classes)
        d["plan"] = {m: method_settings(self, m) for m in self.methods}
        d["eval_schema"] = EVAL_SCHEMA
        return d


def method_settings(config: EvalConfig, method: str) -> list[dict]:
    """The settings a method is swept over, in order; each becomes one point of the figure.

    budget: ``max_thinking_tokens`` (and ``min_thinking_tokens`` with --force-min) per budget, then ``num_ignore``
    (with ``max_thinking_tokens`` = --ignore-cap) per ignore count; token-conditional and rejection: the *asked*
    ``max_thinking_tokens``; step-conditional: ``steps``; class-conditional: ``class``; parallel: ``n`` (beam / DVTS
    also ``m``). Refuses an unknown method.
    """
    budgets = config.budgets if config.budgets is not None else DEFAULT_BUDGETS
    if method == "budget":
        out = []
        if config.budgets is not None or config.num_ignore is None:
            out += [{"max_thinking_tokens": b, **({"min_thinking_tokens": b} if config.force_min else {})} for b in budgets]
        for k in config.num_ignore or ():
            out.append({"num_ignore": k, **({"max_thinking_tokens": config.ignore_cap} if config.ignore_cap else {})})
        return out
    if method in ("token-conditional", "rejection"):
        return [{"max_thinking_tokens": b} for b in budgets]
    if method == "step-conditional":
        return [{"steps": s} for s in (config.steps if config.steps is not None else DEFAULT_STEPS)]
    if method == "class-conditional":
        return [{"class": c} for c in config.classes]
    if method in POOLED or method in DERIVED:
        return [{"n": k} for k in config.ns]
    if method in STEPWISE:
        return [{"n": k, "m": config.beam_width} for k in config.ns]
    raise TTScaleError(f"--method {method!r} is unknown; use one of {', '.join(METHODS)}")


# ------------------------------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    """A piece of work that is run as a whole: ``kind`` (the executor), the problems of one batch, and the
    (method, setting) pairs it writes one row for per problem. ``index`` numbers the batch within its sweep point."""

    kind: str
    problems: tuple
    outputs: tuple                 # ((method, setting), ...)
    index: int

    def keys(self) -> list[tuple[str, str, str]]:
        """The store keys of every row this unit writes."""
        return [row_key(p.id, m, s) for p in self.problems for m, s in self.outputs]

    def seed(self, base: int) -> int:
        """A seed fixed by the run seed, the unit's kind, outputs and batch: independent of sharding and resumes."""
        text = f"{base}|{self.kind}|{canonical_json([[m, s] for m, s in self.outputs])}|{self.index}"
        return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)

    def cost(self) -> int:
        """Generations this unit makes (a pool of max(N) samples per problem, N per problem for beam / DVTS, one per
        problem otherwise): the progress bar's unit, so that its ETA weighs a pool of 16 samples as 16."""
        if self.kind == "pool":
            return len(self.problems) * max(s["n"] for _, s in self.outputs)
        if self.kind in STEPWISE:
            return len(self.problems) * self.outputs[0][1]["n"]
        return len(self.problems)

    def label(self) -> str:
        """``budget max_thinking_tokens=64`` or ``pool n=1,4,16``: for the progress bar."""
        if self.kind == "pool":
            return "pool " + "/".join(dict.fromkeys(m for m, _ in self.outputs))
        m, s = self.outputs[0]
        return f"{m} " + ",".join(f"{k}={v}" for k, v in sorted(s.items()))


def _chunks(items: list, size: int) -> list[tuple]:
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


def plan_units(config: EvalConfig, problems: list) -> list[Unit]:
    """Every unit of the run, in a fixed order that depends only on the configuration and the problems.

    Sequential methods: one unit per (setting, batch of ``batch_size`` problems). Majority, best-of-n and weighted:
    one ``pool`` unit per batch of ``search_batch`` problems, serving all three at every N (the first n of max(N)
    samples). Beam and DVTS: one unit per (N, batch). Compute-optimal has no units (its rows are derived at the end).
    """
    units = []
    for method in config.methods:
        if method in SEQUENTIAL_METHODS:
            for s in method_settings(config, method):
                units += [Unit(method, c, ((method, s),), i) for i, c in enumerate(_chunks(problems, config.batch_size))]
        elif method in STEPWISE:
            for s in method_settings(config, method):
                units += [Unit(method, c, ((method, s),), i) for i, c in enumerate(_chunks(problems, config.search_batch))]
    pooled = [m for m in POOLED if m in config.methods]
    if pooled:
        outputs = tuple((m, s) for m in pooled for s in method_settings(config, m))
        units += [Unit("pool", c, outputs, i) for i, c in enumerate(_chunks(problems, config.search_batch))]
    return units


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
    from datetime import timedelta

    import torch
    from accelerate import PartialState

    cpu = device == "cpu" or not torch.cuda.is_available()
    # A rank that finishes its shard early waits at the final barrier; allow long evaluations.
    state = PartialState(cpu=cpu, timeout=timedelta(hours=48))
    dev = device if device not in ("auto", "cuda") else ("cpu" if cpu else str(state.device))
    return Processes(rank=state.process_index, world=state.num_processes, device=dev, barrier=state.wait_for_everyone)


# --------------------------------------------------------------------------------------------- the run
@dataclass
class EvalResult:
    """What a run did on this process: rows written here, units run, and (rank 0) the report's paths."""

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
    from benchmarks import eval_methods
    from benchmarks.datasets import load_dataset_rows

    t0 = time.perf_counter()
    log = log or (lambda msg: print(f"ttscale: {msg}", file=sys.stderr))
    eval_methods.check_scorer(config)
    procs = procs or processes(device)
    if procs.note:
        log(procs.note)
    problems = load_dataset_rows(config.dataset, limit=config.limit, field_map=config.fields, seed=config.seed)
    units = plan_units(config, problems)
    store = RunStore(out_dir, config.to_dict(), procs.rank, procs.world)
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
            ctx = eval_methods.Context.build(config, model=model, tokenizer=tokenizer, device=procs.device,
                                             device_map=device_map, attn=attn, trust_remote_code=trust_remote_code)
            result.rows_written, result.units_run = _run_units(ctx, store, mine, procs, progress)
    except BaseException:
        store.close()  # every finished row is on disk already; the next run resumes from them
        raise
    if procs.rank != 0:
        store.close()
    procs.wait()  # every shard is complete and closed
    if procs.rank == 0:
        try:
            derived = eval_methods.derive_rows(config, store)
            result.rows_written += derived
            store.merge()
        finally:
            store.close()
        from benchmarks.report import report

        result.paths = report(out_dir)
    result.wall_s = time.perf_counter() - t0
    return result


def _run_units(ctx, store: RunStore, units: list[Unit], procs: Processes, progress: bool) -> tuple[int, int]:
    from benchmarks import eval_methods

    total = sum(u.cost() for u in units)
    bar = None
    if progress and procs.rank == 0:
        from tqdm.auto import tqdm

        who = f" (rank 0 of {procs.world}; each process has its share)" if procs.world > 1 else ""
        bar = tqdm(total=total, desc=f"eval{who}", unit="gen", dynamic_ncols=True)
    written = 0
    try:
        for unit in units:
            if bar is not None:
                bar.set_postfix_str(unit.label(), refresh=False)
            for row in eval_methods.run_unit(ctx, unit):
                written += store.append(row)
            if bar is not None:
                bar.update(unit.cost())
    finally:
        if bar is not None:
            bar.close()
    return written, len(units)


def config_fields() -> list:
    """The dataclass fields of :class:`EvalConfig` (the CLI builds one flag from each)."""
    return list(fields(EvalConfig))

