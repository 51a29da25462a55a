"""The traces stage: a reasoning trace (thinking + attempt) for every question, from one of three sources.

    engine    a local thinking model through :class:`engine.engine.ThinkingEngine`, with budgets, several samples per
              question (seeded), batched, cached per question (:class:`curation.cache.StageCache`), resumable
    column    imported from a dataset column kept in ``question.metadata`` (s1K: ``thinking_trajectories``, ``attempt``)
    teacher   the programmatic teacher of the synthetic tasks (:mod:`curation.teacher`), with planted, corrected slips

Every source writes the same shape (REFERENCE §1, "Traces from a thinking model")::

    metadata["traces"] = {"source": "engine" | "column" | "teacher",
                          "samples": [{"thinking": str, "attempt": str, "answer": str | None,
                                       "thinking_tokens": int, "finish_reason": str, "model": str}, ...],
                          "tokens": "engine" | "tokenizer <model>" | "words"}      # what counted thinking_tokens

``answer`` is :func:`engine.answers.extract_answer` of the attempt. A question the column or teacher source has no
trace for is dropped (reason ``no_trace``); the engine source drops nothing.

Engine runs, phase by phase (like ``benchmarks.eval.runner``):

    units of ``max(1, batch_size // samples_per_question)`` questions, each prompt repeated ``samples_per_question``
    times and the unit's prompts batched together, run through :func:`curation.cache.run_units` (plan, open, shard,
    run, finish; several processes as ``ttscale eval`` runs them); a sampled unit's seed comes from ``seed`` and its
    question ids, so a unit re-run after a kill gives the same samples; each question's row is appended once its unit
    returns.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from transformers import AutoTokenizer

from benchmarks.eval.runner import Processes, processes
from curation.cache import StageCache, run_units, unit_seed
from curation.schema import Drop, Question
from curation.teacher import STYLES, teacher_trace
from engine.answers import extract_answer
from engine.engine import ThinkingEngine
from engine.errors import ConfigError, TTScaleError
from engine.formats import FormatConfig
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.model_config import DEFAULT_MODEL, ModelConfig
from engine.models import gguf_to_safetensors, resolve_model

STAGE = "traces"
SOURCES = ("engine", "column", "teacher")
TRACES_SCHEMA = 1  # bump when cached rows of the same settings would change meaning


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass(frozen=True)
class TraceConfig:
    """Where traces come from and, for the engine source, how they are generated; each field is one flag (STYLE §9).

    Refuses (one sentence each) an unknown source, ``samples_per_question`` < 1, greedy decoding (temperature 0) with
    more than one sample per question (they would be identical), budgets and sampling values that
    :class:`BudgetConfig` / :class:`SamplingConfig` refuse, a bad format, ``batch_size`` < 1, an empty column name,
    a ``slip_rate`` or ``check_rate`` outside [0, 1] and an unknown ``answer_style``.
    """

    source: str = field(default="engine", metadata=_help("where traces come from: " + ", ".join(SOURCES)))
    model: str = field(default=DEFAULT_MODEL, metadata=_help("engine: the thinking model that writes the traces"))
    dtype: str = field(default="auto", metadata=_help("engine: model dtype"))
    device: str = field(default="auto", metadata=_help("engine: device (auto, cpu, cuda, ...)"))
    format: str = field(default="auto", metadata=_help("engine: thinking format (auto, s1, think-tags)"))
    template: str = field(default="auto", metadata=_help("engine: prompt style (auto, chat, plain)"))
    system: str | None = field(default=None, metadata=_help("engine: system message (s1 prompts with the raw question: none)"))
    samples_per_question: int = field(default=1, metadata=_help("engine/teacher: traces per question (> 1 needs temperature > 0 for the engine)"))
    min_thinking_tokens: int = field(default=0, metadata=_help("engine: replace attempts to end thinking below this many tokens with 'Wait'"))
    max_thinking_tokens: int | None = field(default=2048, metadata=_help("engine: force the end of thinking at this many tokens"))
    num_ignore: int = field(default=0, metadata=_help("engine: ignore the first K attempts to end thinking"))
    max_answer_tokens: int | None = field(default=512, metadata=_help("engine: cap on the attempt's tokens"))
    temperature: float = field(default=0.0, metadata=_help("engine: sampling temperature; 0 = greedy (one sample per question)"))
    top_p: float = field(default=1.0, metadata=_help("engine: top-p"))
    top_k: int = field(default=0, metadata=_help("engine: top-k (0 = off)"))
    seed: int = field(default=0, metadata=_help("engine: seed of every sampled unit; teacher: seed of the slips"))
    batch_size: int = field(default=8, metadata=_help("engine: prompts per generate call (part of the cache key: batches change numerics)"))
    thinking_column: str = field(default="thinking_trajectories", metadata=_help(
        "column: the metadata field holding the thinking (a string, or a list of strings, one per sample)"))
    attempt_column: str = field(default="attempt", metadata=_help("column: the metadata field holding the attempt (the answer text)"))
    source_model: str = field(default="unknown", metadata=_help("column: who wrote the imported traces (a label, e.g. gemini-2.0-flash-thinking)"))
    slip_rate: float = field(default=0.0, metadata=_help("teacher: probability that a step states a wrong value first, then 'Wait' and the fix"))
    check_rate: float = field(default=0.0, metadata=_help("teacher: probability that a trace ends with 'Wait, let me check: ...' (which catches a slip of the last step)"))
    answer_style: str = field(default="answer", metadata=_help("teacher: the attempt restates the chain and ends in 'Answer: X' (answer) or '\\boxed{X}' (boxed), or is X alone (bare)"))
    count_tokenizer: str | None = field(default=None, metadata=_help(
        "column/teacher: model whose tokenizer counts thinking tokens (default: count words)"))

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ConfigError(f"`source` {self.source!r} is unknown; use one of {', '.join(SOURCES)}")
        for name, least in (("samples_per_question", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"`{name}` must be an integer >= {least}, got {value!r}")
        self.budget()  # BudgetConfig's refusals name the same fields
        self.sampling(self.seed)
        if self.source == "engine" and self.temperature == 0 and self.samples_per_question > 1:
            raise ConfigError(f"`temperature` 0 is greedy, so the {self.samples_per_question} samples per question would be "
                              "identical; use a `temperature` above 0 (e.g. 0.7) or `samples_per_question` 1")
        FormatConfig(self.format, template=self.template, system=self.system).thinking_format()
        ModelConfig(self.model, dtype=self.dtype, device=self.device)
        for name in ("thinking_column", "attempt_column", "source_model"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigError(f"`{name}` is empty; give a name")
        for name in ("slip_rate", "check_rate"):
            rate = getattr(self, name)
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
                raise ConfigError(f"`{name}` must be a probability in [0, 1], got {rate!r}")
        if self.answer_style not in STYLES:
            raise ConfigError(f"`answer_style` {self.answer_style!r} is unknown; use one of {', '.join(STYLES)}")

    def budget(self) -> BudgetConfig:
        """The engine's budget for every trace."""
        return BudgetConfig(min_thinking_tokens=self.min_thinking_tokens, max_thinking_tokens=self.max_thinking_tokens,
                            num_ignore=self.num_ignore, max_answer_tokens=self.max_answer_tokens)

    def sampling(self, seed: int | None) -> SamplingConfig:
        """The engine's sampling settings with ``seed`` (None under greedy: nothing is random)."""
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              seed=None if self.temperature == 0 else seed)

    def cache_settings(self) -> dict:
        """What decides an engine trace, hashed into the cache file name: model, format, budget, sampling, samples,
        batch size; not the device, the columns, the teacher or the process count."""
        keys = ("model", "dtype", "format", "template", "system", "samples_per_question", "min_thinking_tokens",
                "max_thinking_tokens", "num_ignore", "max_answer_tokens", "temperature", "top_p", "top_k", "seed", "batch_size")
        settings = {k: getattr(self, k) for k in keys}
        if self.temperature == 0:
            for k in ("top_p", "top_k", "seed"):  # greedy: these change nothing
                settings.pop(k)
        return {"schema": TRACES_SCHEMA, **settings}


# ------------------------------------------------------------------------------------------------ the stage
def trace_questions(questions: Iterable[Question], config: TraceConfig, work_dir: str | None = None, *,
                    engine: ThinkingEngine | None = None, tokenizer=None, drops: list | None = None,
                    procs: Processes | None = None, progress: bool = True, log=None) -> Iterator[Question]:
    """Yield every question that got traces, in input order, with ``metadata["traces"]`` set (inputs are not
    mutated); a question without one is recorded in ``drops`` (reason ``no_trace``).

    ``engine`` skips loading ``config.model`` (which is then only a label); the model is loaded only when some question
    is not yet cached. ``tokenizer`` (or ``config.count_tokenizer``) counts the thinking tokens of imported and
    teacher traces. Refuses an engine run without ``work_dir`` (the cache lives there) and what
    :class:`StageCache` and ``ThinkingEngine.iter_generate`` refuse (a prompt too long for the model, with numbers).
    """
    if config.source == "engine":
        if not work_dir:
            raise TTScaleError("the engine trace source caches its traces in a work directory; pass work_dir")
        return _engine_traces(list(questions), config, work_dir, engine, procs, progress, log)
    return _imported_traces(questions, config, *_counter(tokenizer, config.count_tokenizer), drops)


def _imported_traces(questions, config, count, counted_by, drops) -> Iterator[Question]:
    for q in questions:
        try:
            samples = _column_samples(q, config) if config.source == "column" else _teacher_samples(q, config)
        except _NoTrace as why:
            if drops is not None:
                drops.append(Drop(q.id, STAGE, "no_trace", str(why), q.source))
            continue
        for s in samples:
            s["thinking_tokens"] = count(s["thinking"])
        yield _with_traces(q, {"source": config.source, "samples": samples, "tokens": counted_by})


def trace_tokens(question: Question) -> float | None:
    """The mean thinking tokens of a question's traces (the second difficulty signal), or None without traces."""
    samples = (question.metadata.get(STAGE) or {}).get("samples") or []
    return sum(s["thinking_tokens"] for s in samples) / len(samples) if samples else None


class _NoTrace(Exception):
    """This question has no trace in this source (the message says why); it is dropped, not refused."""


def _with_traces(q: Question, traces: dict) -> Question:
    return replace(q, metadata={**q.metadata, STAGE: traces})


# ------------------------------------------------------------------------------------------- column, teacher
def _column_samples(q: Question, config: TraceConfig) -> list[dict]:
    thinking = q.metadata.get(config.thinking_column)
    if isinstance(thinking, str):
        thinking = [thinking]
    if not isinstance(thinking, list) or not thinking or not all(isinstance(t, str) and t.strip() for t in thinking):
        raise _NoTrace(f"no thinking text in the column {config.thinking_column!r}")
    attempt = q.metadata.get(config.attempt_column, "")
    attempts = attempt if isinstance(attempt, list) else [attempt] * len(thinking)
    if len(attempts) != len(thinking):
        raise _NoTrace(f"{len(thinking)} thinking texts but {len(attempts)} attempts in {config.attempt_column!r}")
    return [{"thinking": t, "attempt": a if isinstance(a, str) else "", "answer": extract_answer(a if isinstance(a, str) else ""),
             "finish_reason": "column", "model": config.source_model} for t, a in zip(thinking, attempts)]


def _teacher_samples(q: Question, config: TraceConfig) -> list[dict]:
    out = []
    for i in range(config.samples_per_question):
        try:
            t = teacher_trace(q.question, slip_rate=config.slip_rate, seed=config.seed, sample=i, style=config.answer_style,
                              check_rate=config.check_rate)
        except TTScaleError as exc:
            raise _NoTrace(str(exc)) from None
        out.append({"thinking": t["thinking"], "attempt": t["attempt"], "answer": t["answer"], "finish_reason": "teacher",
                    "model": "teacher", "slips": t["slips"]})
    return out


def _counter(tokenizer, spec: str | None):
    """A function text -> token count, and what it counts with."""
    if tokenizer is None and spec:
        kind, where = resolve_model(spec)
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf_to_safetensors(where) if kind == "gguf" else where)
        except OSError as exc:
            raise TTScaleError(f"`count_tokenizer` {spec}: its tokenizer could not be loaded ({str(exc).splitlines()[0]})") from exc
    if tokenizer is None:
        return (lambda text: len(text.split())), "words"
    name = spec or getattr(tokenizer, "name_or_path", "") or "given"
    return (lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])), f"tokenizer {name}"


# -------------------------------------------------------------------------------------------------- engine
def _engine_traces(questions, config, work_dir, engine, procs, progress, log) -> Iterator[Question]:
    log = log or (lambda msg: print(f"ttscale: {msg}", file=sys.stderr))
    procs = procs or processes(config.device)
    cache = StageCache(work_dir, STAGE, config.cache_settings(), procs.rank, procs.world)

    def make_worker():
        eng = engine or ThinkingEngine.from_config(ModelConfig(config.model, dtype=config.dtype, device=procs.device),
                                                   FormatConfig(config.format, template=config.template, system=config.system))
        return lambda pending, unit: _trace_unit(eng, pending, unit, config)

    run_units(cache, questions, max(1, config.batch_size // config.samples_per_question), make_worker, procs,
              progress=progress, desc="traces", log=lambda msg: log(f"traces with {config.model}: {msg}"))
    for q in questions:
        yield _with_traces(q, cache.get(q.id))


def _trace_unit(engine: ThinkingEngine, pending: list[Question], unit: list[Question], config: TraceConfig) -> list[dict]:
    """One unit's traces: each question's prompt ``samples_per_question`` times, batched, seeded from the unit."""
    k = config.samples_per_question
    prompts = [q.question for q in pending for _ in range(k)]
    sampling = config.sampling(unit_seed(config.seed, [q.id for q in unit]))
    results = [r for batch in engine.iter_generate(prompts, config.budget(), sampling, batch_size=config.batch_size)
               for r in batch]
    return [{"source": "engine", "tokens": "engine",
             "samples": [{"thinking": r.thinking, "attempt": r.answer, "answer": extract_answer(r.answer),
                          "thinking_tokens": r.thinking_tokens, "finish_reason": r.finish_reason, "model": config.model}
                         for r in results[i * k: (i + 1) * k]]} for i in range(len(pending))]
