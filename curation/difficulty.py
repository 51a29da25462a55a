"""The difficulty stage: how often local grader models solve each question, and which questions that drops.

    config = DifficultyConfig(graders=("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B-Instruct"))   # s1's two graders
    kept = list(difficulty_stage(questions, config, "work/", drops=drops))

Per grader, ``samples`` generations per question through :class:`engine.engine.ThinkingEngine` (budgets and caps from
the config), graded against the question's reference answer the way ``ttscale eval`` grades
(:class:`benchmarks.eval.grading.Grader`: synthetic questions by number, everything else ``extract_answer`` then
math-verify ``is_equivalent``). The generations are cached per question, grader and settings
(:class:`curation.cache.StageCache`), so a killed run redoes nothing finished; the grading itself is model-free and
done again when the reference answer changed. Every kept question gets::

    metadata["difficulty"] = {"graders": {model: {"k": k, "correct": c, "pass_rate": c / k}},
                              "trace_tokens": <mean thinking tokens of its traces, or None>}

Rules (``rule``):

    s1     drop what ANY grader solves, pass rate >= ``solved_at`` (REFERENCE §1: Qwen2.5-7B-Instruct or -32B-Instruct;
           with one greedy sample, solved = correct); reason ``solved``, the detail names the grader and its pass rate
    band   LIMO: keep a pass rate (pooled over the graders) within [``band_min``, ``band_max``] (REFERENCE §2 and §8: low
           but not zero); reasons ``too_easy`` / ``too_hard``

A question without a reference answer (neither ``answer`` nor a ``\\boxed{}`` in its solution) cannot be graded and is
dropped (reason ``no_reference``). Trace length is the second difficulty signal: recorded here, used by selection.
Grader names are checked before any work (:func:`engine.models.resolve_model`); a grader that then fails to load is
refused in the loader's own sentence.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from benchmarks.data.problem import Problem
from benchmarks.data.synthetic import TASKS
from benchmarks.eval.grading import Grader, is_synthetic
from benchmarks.eval.runner import Processes, processes
from curation.cache import StageCache, run_units, unit_seed
from curation.schema import Drop, Question
from curation.traces import trace_tokens
from engine.answers import extract_answer
from engine.engine import ThinkingEngine
from engine.errors import ConfigError, TTScaleError
from engine.formats import FormatConfig, end_of_turn_ids
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.model_config import ModelConfig
from engine.models import resolve_model

STAGE = "difficulty"
RULES = ("s1", "band")
S1_GRADERS = ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B-Instruct")  # REFERENCE §1
DIFFICULTY_SCHEMA = 1


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


@dataclass(frozen=True)
class DifficultyConfig:
    """Which graders, how they sample, and which rule drops questions; each field is one flag (STYLE §9).

    Refuses (one sentence each) no graders or one listed twice, an unknown rule, ``samples`` < 1, greedy decoding with
    more than one sample (identical samples), ``solved_at`` / ``band_min`` / ``band_max`` outside [0, 1] or a band
    whose minimum is above its maximum, ``batch_size`` < 1, and budgets, sampling values and formats their own
    configs refuse.
    """

    graders: tuple[str, ...] = field(default=S1_GRADERS, metadata=_help(
        "grader models (several allowed): embedded name, local dir, .gguf file or hub id (s1: Qwen2.5-7B/32B-Instruct)",
        flag="--grader"))
    rule: str = field(default="s1", metadata=_help("s1: drop what any grader solves; band: keep a pass rate within [band_min, band_max] (LIMO)"))
    samples: int = field(default=1, metadata=_help("generations per question and grader (k); > 1 needs temperature > 0"))
    solved_at: float = field(default=0.5, metadata=_help("s1 rule: a grader solves a question at this pass rate or above"))
    band_min: float = field(default=0.01, metadata=_help("band rule: drop below this pooled pass rate as too_hard (low but not zero)"))
    band_max: float = field(default=0.3, metadata=_help("band rule: drop above this pooled pass rate as too_easy"))
    max_thinking_tokens: int | None = field(default=1024, metadata=_help("thinking cap of each grader generation"))
    max_answer_tokens: int | None = field(default=512, metadata=_help("answer cap of each grader generation"))
    temperature: float = field(default=0.0, metadata=_help("grader sampling temperature; 0 = greedy (one sample)"))
    top_p: float = field(default=1.0, metadata=_help("grader top-p"))
    top_k: int = field(default=0, metadata=_help("grader top-k (0 = off)"))
    seed: int = field(default=0, metadata=_help("seed of every sampled unit"))
    batch_size: int = field(default=8, metadata=_help("prompts per generate call (part of the cache key: batches change numerics)"))
    dtype: str = field(default="auto", metadata=_help("grader dtype"))
    device: str = field(default="auto", metadata=_help("device (auto, cpu, cuda, ...)"))
    format: str = field(default="auto", metadata=_help("thinking format of the graders (auto, s1, think-tags)"))
    template: str = field(default="auto", metadata=_help("prompt style (auto, chat, plain)"))
    system: str | None = field(default=None, metadata=_help("system message of the graders"))

    def __post_init__(self):
        if isinstance(self.graders, str):
            object.__setattr__(self, "graders", (self.graders,))
        object.__setattr__(self, "graders", tuple(self.graders))
        if not self.graders or any(not isinstance(g, str) or not g.strip() for g in self.graders):
            raise ConfigError("`graders` is empty; give at least one grader model (s1 uses Qwen/Qwen2.5-7B-Instruct and -32B)")
        if len(set(self.graders)) != len(self.graders):
            raise ConfigError(f"`graders` lists a model twice ({', '.join(self.graders)}); give each once")
        if self.rule not in RULES:
            raise ConfigError(f"`rule` {self.rule!r} is unknown; use s1 (drop what any grader solves) or band (LIMO)")
        for name in ("samples", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"`{name}` must be an integer >= 1, got {value!r}")
        for name in ("solved_at", "band_min", "band_max"):
            value = getattr(self, name)
            if not _number(value) or not 0 <= value <= 1:
                raise ConfigError(f"`{name}` must be a pass rate in [0, 1], got {value!r}")
        if self.band_min > self.band_max:
            raise ConfigError(f"`band_min` {self.band_min} is above `band_max` {self.band_max}; make the minimum at most the maximum")
        self.budget()
        self.sampling(self.seed)
        if self.temperature == 0 and self.samples > 1:
            raise ConfigError(f"`temperature` 0 is greedy, so the {self.samples} samples per question would be identical; "
                              "use a `temperature` above 0 (e.g. 0.7) or `samples` 1")
        FormatConfig(self.format, template=self.template, system=self.system).thinking_format()
        for g in self.graders:
            ModelConfig(g, dtype=self.dtype, device=self.device)

    def budget(self) -> BudgetConfig:
        """The budget of every grader generation."""
        return BudgetConfig(max_thinking_tokens=self.max_thinking_tokens, max_answer_tokens=self.max_answer_tokens)

    def sampling(self, seed: int | None) -> SamplingConfig:
        """Sampling settings with ``seed`` (None under greedy)."""
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              seed=None if self.temperature == 0 else seed)

    def cache_settings(self, grader: str) -> dict:
        """What decides one grader's generations (hashed into its cache file name); not the rule or its thresholds,
        which are applied afresh to the cached generations."""
        keys = ("samples", "max_thinking_tokens", "max_answer_tokens", "temperature", "top_p", "top_k", "seed",
                "batch_size", "dtype", "format", "template", "system")
        settings = {"schema": DIFFICULTY_SCHEMA, "model": grader, **{k: getattr(self, k) for k in keys}}
        if self.temperature == 0:
            for k in ("top_p", "top_k", "seed"):
                settings.pop(k)
        return settings


# ------------------------------------------------------------------------------------------- pure helpers
def reference_answer(q: Question) -> str | None:
    """The answer a question is graded against: ``answer``, else the answer its solution commits to (its last
    ``\\boxed{}`` or answer label), else None."""
    if q.answer.strip():
        return q.answer.strip()
    return extract_answer(q.solution) if q.solution.strip() else None


def is_synthetic_question(q: Question) -> bool:
    """Whether a question comes from the synthetic tasks (graded by number, as eval grades them)."""
    return is_synthetic(q.source) or q.metadata.get("task") in TASKS


def grade(q: Question, texts: list[str], grader: Grader) -> tuple[list[str | None], list[bool]]:
    """The answers ``texts`` commit to and whether each is right for ``q``, read as ``ttscale eval`` reads them
    (synthetic questions by number). Refuses a question without a reference answer."""
    gold = reference_answer(q)
    if gold is None:
        raise TTScaleError(f"question {q.id} has no reference answer (no answer and no boxed answer in its solution) to grade against")
    problem = Problem(q.id, q.question, gold)
    grader = replace(grader, synthetic=is_synthetic_question(q))
    answers = [grader.extract(problem, t) for t in texts]
    return answers, [grader.is_correct(problem, a) for a in answers]


def decide(difficulty: dict, config: DifficultyConfig) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``config.rule`` drops a question with this ``metadata["difficulty"]``, else None."""
    graders = difficulty["graders"]
    if config.rule == "s1":
        for name, g in graders.items():
            if g["pass_rate"] >= config.solved_at:
                return "solved", f"{name} solves it (pass rate {g['pass_rate']:.2f} over {g['k']} samples)"
        return None
    correct, total = sum(g["correct"] for g in graders.values()), sum(g["k"] for g in graders.values())
    rate = correct / total
    each = ", ".join(f"{n} {g['pass_rate']:.2f}" for n, g in graders.items())
    if rate > config.band_max:
        return "too_easy", f"pass rate {rate:.2f} ({each}) is above {config.band_max}"
    if rate < config.band_min:
        return "too_hard", f"pass rate {rate:.2f} ({each}) is below {config.band_min}"
    return None


# ------------------------------------------------------------------------------------------------ the stage
def check_graders(graders: Iterable[str]) -> None:
    """Refuse, before any work, a grader that names no loadable model (no such path, not a GGUF file, an incomplete
    model directory, a name that is neither embedded nor a hub id), in the loader's sentence naming the grader."""
    for spec in graders:
        try:
            resolve_model(spec)
        except TTScaleError as exc:
            raise TTScaleError(_grader_error(spec, exc)) from exc


def _grader_error(spec: str, exc: Exception) -> str:
    msg = str(exc)
    for prefix in (f"--model {spec}: ", f"--model {spec} "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            break
    return f"difficulty grader {spec} cannot be loaded: {msg}"


def difficulty_stage(questions: Iterable[Question], config: DifficultyConfig, work_dir: str, *,
                     engines: dict | None = None, drops: list | None = None, procs: Processes | None = None,
                     progress: bool = True, log=None) -> Iterator[Question]:
    """Yield the questions ``config.rule`` keeps, in input order, with ``metadata["difficulty"]`` set (inputs are not
    mutated); record a :class:`Drop` in ``drops`` for each removed (``solved``, ``too_easy``, ``too_hard``,
    ``no_reference``).

    ``engines`` maps a grader name to a ready ``ThinkingEngine`` (tests; that name is then a label and is not loaded).
    Graders are loaded one at a time, only when they have uncached questions, and released before the next. Refuses
    now, before any work, a grader that names no model (:func:`check_graders`) and engines for unlisted graders;
    later, a grader that fails to load, in the loader's sentence.
    """
    engines = dict(engines or {})
    unknown = sorted(set(engines) - set(config.graders))
    if unknown:
        raise TTScaleError(f"engines given for {', '.join(unknown)}, which `graders` does not list; list them or leave them out")
    check_graders(g for g in config.graders if g not in engines)
    return _run(list(questions), config, work_dir, engines, drops, procs, progress, log)


def _run(questions, config, work_dir, engines, drops, procs, progress, log) -> Iterator[Question]:
    log = log or (lambda msg: print(f"ttscale: {msg}", file=sys.stderr))
    procs = procs or processes(config.device)
    gradable = [q for q in questions if reference_answer(q) is not None]
    caches = {spec: _run_grader(spec, gradable, config, work_dir, engines.get(spec), procs, progress, log)
              for spec in config.graders}
    for q in questions:
        if reference_answer(q) is None:
            if drops is not None:
                drops.append(Drop(q.id, STAGE, "no_reference", "no answer and no boxed answer in the solution to grade against", q.source))
            continue
        difficulty = {"graders": {spec: _graded(q, caches[spec].get(q.id)) for spec in config.graders},
                      "trace_tokens": trace_tokens(q)}
        verdict = decide(difficulty, config)
        if verdict is not None:
            if drops is not None:
                drops.append(Drop(q.id, STAGE, verdict[0], verdict[1], q.source))
            continue
        yield replace(q, metadata={**q.metadata, STAGE: difficulty})


def _graded(q: Question, cached: dict) -> dict:
    """A grader's entry for one question from its cached generations; regraded when the reference changed."""
    if cached.get("gold") == reference_answer(q) and cached.get("synthetic") == is_synthetic_question(q):
        correct = sum(cached["correct"])
    else:
        correct = sum(grade(q, cached["texts"], Grader(False, tuple(cached["delimiters"])))[1])
    k = len(cached["texts"])
    return {"k": k, "correct": correct, "pass_rate": correct / k}


def _run_grader(spec, questions, config, work_dir, engine, procs, progress, log) -> StageCache:
    cache = StageCache(work_dir, STAGE, config.cache_settings(spec), procs.rank, procs.world)

    def make_worker():
        eng = engine
        if eng is None:
            try:
                eng = ThinkingEngine.from_config(ModelConfig(spec, dtype=config.dtype, device=procs.device),
                                                 FormatConfig(config.format, template=config.template, system=config.system))
            except TTScaleError as exc:
                raise TTScaleError(_grader_error(spec, exc)) from exc
        return lambda pending, unit: _grade_unit(eng, pending, unit, config)

    run_units(cache, questions, max(1, config.batch_size // config.samples), make_worker, procs, progress=progress,
              desc=f"difficulty {spec}", log=lambda msg: log(f"difficulty, grader {spec}: {msg}"))
    gc.collect()  # the grader's engine is gone with the worker: one grader in memory at a time
    return cache


def _grade_unit(engine: ThinkingEngine, pending: list[Question], unit: list[Question], config: DifficultyConfig) -> list[dict]:
    """One unit's generations, graded: ``samples`` per question, batched, seeded from the unit."""
    k = config.samples
    end_ids = set(end_of_turn_ids(engine.tokenizer, engine.model.generation_config.eos_token_id))
    grader = Grader.for_run("pool", engine.format.think_end)
    prompts = [q.question for q in pending for _ in range(k)]
    sampling = config.sampling(unit_seed(config.seed, [q.id for q in unit]))
    results = [r for batch in engine.iter_generate(prompts, config.budget(), sampling, batch_size=config.batch_size)
               for r in batch]
    out = []
    for i, q in enumerate(pending):
        rows = results[i * k: (i + 1) * k]
        # The whole generation as eval grades it: delimiters kept, end-of-turn tokens left out.
        texts = [engine.tokenizer.decode([t for t in r.token_ids if t not in end_ids], skip_special_tokens=False,
                                         clean_up_tokenization_spaces=False) for r in rows]
        answers, correct = grade(q, texts, grader)
        out.append({"texts": texts, "answers": answers, "correct": correct, "gold": reference_answer(q),
                    "synthetic": is_synthetic_question(q), "delimiters": list(grader.delimiters),
                    "thinking_tokens": [r.thinking_tokens for r in rows]})
    return out
