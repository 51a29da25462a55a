"""The s1K pipeline end to end, and each stage alone, over one run directory (:class:`curation.workdir.WorkDir`).

    pool → decontaminate (8-grams, exact and near dedup) → traces → quality → difficulty → diversity → select → outputs

A run is configured by one :class:`PipelineConfig`: a section per stage, each the stage's own config dataclass
(``PoolConfig``, ``DecontamConfig``, ``TraceConfig``, ``QualityConfig``, ``DifficultyConfig``, ``DiversityConfig``,
``SelectionConfig``); in YAML, a mapping per section (``pipeline_config(yaml_dict)``). ``traces`` may be a list of trace
configs tried in order — each question takes its trace from the first source that has one (the programmatic teacher
for synthetic questions, then the engine, say) — and an entry's ``max_questions`` caps how many questions it traces
(the engine on a sample); questions no entry traces are dropped as ``no_trace``.

Each stage reads the previous stage's kept questions from the run directory and is skipped when it is done with the
same settings; the expensive stages (traces, difficulty, an LLM classifier) cache per question, so a killed run
started again redoes nothing finished. The last step writes the dataset in s1K's columns, the report and the manifest
(:mod:`curation.output`) into the run directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from benchmarks.eval.runner import Processes
from curation.cache import StageCache
from curation.decontam import DecontamConfig, decontaminate_and_dedup
from curation.difficulty import DifficultyConfig, check_graders, difficulty_stage
from curation.diversity import DiversityConfig, classify_domains, llm_settings
from curation.output import StageCount, write_outputs
from curation.pool import PoolConfig, SourceSpec, iter_pool
from curation.quality import QualityConfig, quality_filter
from curation.schema import Drop, Question
from curation.select import SelectionConfig, select
from curation.traces import TraceConfig, trace_questions
from curation.workdir import STAGES, StageCounts, WorkDir
from engine.engine import ThinkingEngine
from engine.errors import ConfigError, TTScaleError
from engine.formats import FormatConfig
from engine.model_config import ModelConfig

SHARDED = ("traces", "difficulty")  # the stages whose per-question work is shared over processes
SECTIONS = {"pool": PoolConfig, "decontaminate": DecontamConfig, "traces": TraceConfig, "quality": QualityConfig,
            "difficulty": DifficultyConfig, "diversity": DiversityConfig, "select": SelectionConfig}


@dataclass(frozen=True)
class TraceStep:
    """One entry of the traces stage: a trace config, and how many questions it may trace at most (None: all)."""

    config: TraceConfig = field(default_factory=TraceConfig)
    max_questions: int | None = None


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's settings. Refuses a missing pool, an empty traces list and a ``max_questions`` below 1."""

    pool: PoolConfig | None = None
    decontaminate: DecontamConfig = field(default_factory=DecontamConfig)
    traces: tuple[TraceStep, ...] = (TraceStep(),)
    quality: QualityConfig = field(default_factory=QualityConfig)
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    select: SelectionConfig = field(default_factory=SelectionConfig)

    def __post_init__(self):
        if self.pool is None:
            raise ConfigError("`pool` is missing; give a PoolConfig with the pool's sources")
        if not self.traces:
            raise ConfigError("`traces` is empty; give at least one trace source (teacher, column or engine)")
        for step in self.traces:
            if step.max_questions is not None and (not isinstance(step.max_questions, int) or step.max_questions < 1):
                raise ConfigError(f"`traces.max_questions` must be an integer >= 1 (or unset), got {step.max_questions!r}")

    def settings(self, stage: str) -> dict:
        """The settings of ``stage`` as plain data (what decides whether a done stage can be reused)."""
        if stage == "traces":
            return {"steps": [{"config": asdict(s.config), "max_questions": s.max_questions} for s in self.traces]}
        if stage == "pool":  # a local file that changed is another pool: its size and mtime are part of the settings
            files = {}
            for spec in self.pool.sources:
                name = SourceSpec.parse(spec).name
                if os.path.isfile(name):
                    st = os.stat(name)
                    files[name] = [st.st_size, st.st_mtime_ns]
            return {**asdict(self.pool), "files": files}
        return asdict(getattr(self, stage))

    def to_json(self) -> dict:
        """The whole configuration as plain data (the manifest's ``config``)."""
        return {stage: self.settings(stage) for stage in STAGES}


def _section(cls, name: str, values) -> object:
    """``cls(**values)`` with unknown keys and wrong shapes refused in one sentence naming ``name.key``."""
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise TTScaleError(f"the `{name}` section must be a mapping of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if str(key).replace("-", "_") not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean `{name}.{close[0]}`?" if close else f"; it takes {', '.join(sorted(known))}"
            raise TTScaleError(f"unknown setting `{name}.{key}`{hint}")
    kwargs = {str(k).replace("-", "_"): tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise TTScaleError(f"in the `{name}` section: {exc}") from exc


def pipeline_config(data: dict | None) -> PipelineConfig:
    """A :class:`PipelineConfig` from a mapping of sections (a parsed YAML file); absent sections keep their defaults.
    ``traces`` is a mapping or a list of them, each with an optional ``max_questions``. Refuses unknown sections and
    settings (naming ``section.key``) and what each stage's config refuses."""
    data = data or {}
    if not isinstance(data, dict):
        raise TTScaleError(f"a curation config is a mapping of sections ({', '.join(STAGES)}), got {type(data).__name__}")
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(SECTIONS), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise TTScaleError(f"unknown section `{unknown[0]}`{hint}; the sections are {', '.join(SECTIONS)}")
    pool = data.get("pool")
    if pool is None or (isinstance(pool, dict) and not pool.get("sources")):
        raise TTScaleError("the pool has no sources; give them as `pool: {sources: [...]}` in --config, or --source NAME")
    kwargs = {name: _section(SECTIONS[name], name, data.get(name)) for name in SECTIONS if name != "traces" and name in data}
    if "traces" in data:
        entries = data["traces"] if isinstance(data["traces"], list) else [data["traces"]]
        steps = []
        for i, entry in enumerate(entries):
            entry = dict(entry or {}) if isinstance(entry, dict) or entry is None else entry
            if not isinstance(entry, dict):
                raise TTScaleError(f"`traces` entry {i + 1} must be a mapping of trace settings, got {type(entry).__name__}")
            limit = entry.pop("max_questions", None)
            steps.append(TraceStep(_section(TraceConfig, "traces", entry), limit))
        kwargs["traces"] = tuple(steps)
    try:
        return PipelineConfig(**kwargs)
    except ConfigError as exc:
        raise TTScaleError(str(exc)) from exc


class _Sink:
    """A list-like ``drops`` argument that hands each appended Drop to a callback (the stages that collect drops in
    a list and the run directory that writes them as they come)."""

    def __init__(self, callback: Callable[[Drop], None]):
        self.append = callback


# ------------------------------------------------------------------------------------------------ the stages
def _traces(config: PipelineConfig, work: WorkDir, progress: bool, log, procs) -> Callable:
    def run(questions: Iterable[Question], drop) -> Iterator[Question]:
        remaining = list(questions)
        traced: dict[str, Question] = {}
        order = [q.id for q in remaining]
        for n, step in enumerate(config.traces):
            last = n == len(config.traces) - 1
            take = remaining if step.max_questions is None else remaining[: step.max_questions]
            missed: dict[str, Drop] = {}
            sink = _Sink(lambda d, missed=missed: missed.__setitem__(d.id, d))
            for q in trace_questions(take, step.config, work.out_dir, drops=sink, procs=procs, progress=progress, log=log):
                traced[q.id] = q
            rest = [q for q in remaining if q.id not in traced]
            if last:
                for q in rest:
                    d = missed.get(q.id) or Drop(q.id, "traces", "no_trace", "beyond the last source's max_questions", q.source)
                    drop(d)
            remaining = rest
        for qid in order:
            if qid in traced:
                yield traced[qid]
    return run


def _diversity(config: DiversityConfig, work: WorkDir) -> Callable:
    def run(questions, drop):
        engine = cache = None
        if config.method == "llm":
            engine = ThinkingEngine.from_config(ModelConfig(config.model), FormatConfig())
            cache = StageCache(work.out_dir, "diversity", llm_settings(config))
        return classify_domains(questions, config, engine=engine, cache=cache, record=drop)
    return run


def stage_function(stage: str, config: PipelineConfig, work: WorkDir, progress: bool = True, log=None,
                   procs: Processes | None = None) -> Callable:
    """``fn(questions, drop) -> kept questions`` for ``stage`` under ``config`` (what :meth:`WorkDir.run_stage` runs);
    ``procs`` shares the traces' and difficulty's per-question work over processes."""
    log = log or (lambda msg: print(f"ttscale: {msg}", file=sys.stderr))
    if stage == "pool":
        return lambda questions, drop: iter_pool(config.pool, on_drop=drop)
    if stage == "decontaminate":
        return lambda questions, drop: decontaminate_and_dedup(questions, config.decontaminate, drop)
    if stage == "traces":
        return _traces(config, work, progress, log, procs)
    if stage == "quality":
        return lambda questions, drop: quality_filter(questions, config.quality, drop)
    if stage == "difficulty":
        return lambda questions, drop: difficulty_stage(questions, config.difficulty, work.out_dir, drops=_Sink(drop),
                                                        procs=procs, progress=progress, log=log)
    if stage == "diversity":
        return _diversity(config.diversity, work)
    if stage == "select":
        return lambda questions, drop: iter(select(questions, config.select, record=drop))
    raise TTScaleError(f"unknown curation stage {stage!r}; the stages are {', '.join(STAGES)}")


def check_before_work(config: PipelineConfig, stages: Iterable[str]) -> None:
    """What can be refused before any stage runs: graders that cannot be found (no model is loaded)."""
    if "difficulty" in stages:
        check_graders(config.difficulty.graders)


def run_stage(stage: str, config: PipelineConfig, work: WorkDir, progress: bool = True, log=None,
              procs: Processes | None = None) -> StageCounts | dict:
    """Run one stage on the previous stage's output in ``work`` (skipped, returning its recorded counts, when done
    with the same settings). Refuses a stage whose input stage has not run in ``work``."""
    log = log or (lambda msg: print(f"ttscale: {msg}", file=sys.stderr))
    settings = config.settings(stage)
    if work.is_done(stage, settings):
        log(f"{stage}: done already with these settings ({work.counts(stage)['kept']} kept); skipped")
        return work.counts(stage)
    index = STAGES.index(stage)
    questions = iter(()) if index == 0 else work.questions(STAGES[index - 1])
    if progress and index > 0 and stage not in SHARDED:  # traces and difficulty show their own bars (per question generated)
        total = (work.counts(STAGES[index - 1]) or {}).get("kept")
        questions = tqdm(questions, total=total, desc=stage, unit="q", dynamic_ncols=True, leave=False)
    counts = work.run_stage(stage, settings, stage_function(stage, config, work, progress, log, procs), questions)
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(counts.dropped.items(), key=lambda kv: -kv[1])) or "none"
    log(f"{stage}: {counts.inputs} in, {counts.kept} kept; dropped: {reasons} ({counts.wall_s:.1f} s)")
    return counts


def write_run_outputs(config: PipelineConfig, work: WorkDir) -> dict:
    """The dataset, report and manifest of a run whose stages are all done (:func:`curation.output.write_outputs`).
    Refuses a run with a stage not done yet."""
    counts = []
    for stage in STAGES:
        c = work.counts(stage)
        if c is None:
            raise TTScaleError(f"{work.out_dir}: the {stage} stage is not done; run it (or the whole pipeline) first")
        counts.append(StageCount(stage, c["in"], c["kept"]))
    drops = [d for stage in STAGES for d in work.drops(stage)]
    selected = list(work.questions("select"))
    candidates = list(work.questions("diversity"))
    seeds = {"pool": config.pool.seed, "select": config.select.seed, "traces": [s.config.seed for s in config.traces],
             "difficulty": config.difficulty.seed}
    return write_outputs(work.out_dir, selected, counts, drops, config.to_json(), seeds, candidates=candidates)


def run_stages(config: PipelineConfig, work: WorkDir, stages: Iterable[str], procs: Processes | None = None,
               progress: bool = True, log=None) -> None:
    """Run ``stages`` in order in ``work``, over the processes of ``procs`` (``accelerate launch``, as eval runs):
    rank 0 runs every stage and writes its files; the other ranks take their share of the per-question work of the
    traces and difficulty stages (through the stage caches) and wait for rank 0 at each stage's start and end."""
    procs = procs or Processes()
    for stage in stages:
        procs.wait()  # the previous stage's files are complete before anyone reads them
        work.reload()
        if procs.rank == 0:
            run_stage(stage, config, work, progress, log, procs)
        elif stage in SHARDED and not work.is_done(stage, config.settings(stage)):
            previous = STAGES[STAGES.index(stage) - 1]
            for _ in stage_function(stage, config, work, False, lambda msg: None, procs)(work.questions(previous), lambda d: None):
                pass  # this rank's share lands in the stage cache; rank 0 writes the stage's files
        procs.wait()


def run_pipeline(config: PipelineConfig, out_dir: str, progress: bool = True, log=None,
                 procs: Processes | None = None) -> dict | None:
    """Every stage in order over ``out_dir``, then the outputs; returns the report (None on ranks other than 0).
    Refuses what the stages refuse, graders that cannot be found before any work."""
    check_before_work(config, STAGES)
    procs = procs or Processes()
    work = WorkDir(out_dir)
    run_stages(config, work, STAGES, procs, progress, log)
    return write_run_outputs(config, work) if procs.rank == 0 else None
