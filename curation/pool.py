"""The pool: questions streamed from hub datasets, local JSONL / Parquet files and the synthetic generator.

    iter_pool(["AI-MO/NuminaMath-CoT limit=20000", "data/extra.jsonl fields=question=q,answer=a", "synthetic:arith:2 limit=500 seed=3"])
        -> Iterator[Question]          every source opened and checked first, then rows one at a time

A source is written ``NAME [key=value ...]`` (:meth:`SourceSpec.parse`; keys are :class:`SourceSpec`'s fields):

    hub id     a name in :data:`KNOWN` (its field mapping is built in) or any ``owner/name`` with ``fields=``;
               read with ``datasets.load_dataset(..., streaming=True)``, so nothing is downloaded whole
    .jsonl     read line by line (``engine.jsonl.iter_jsonl``)
    .parquet   read a batch at a time within its row groups (pyarrow), only the mapped columns
    synthetic[:task[:difficulty]]   ``limit`` questions (default 100) of ``benchmarks.data.synthetic``, fixed by ``seed``

A field mapping ``question=problem,solution=solution,answer=answer,source=source`` names the row fields that fill
:class:`~curation.schema.Question`; ``thinking`` and ``attempt`` name an existing trace (s1K's columns), which becomes
``metadata["traces"]``. Without ``answer``, the answer is the one ``engine.answers.extract_answer`` reads from the
solution (NuminaMath's last ``\\boxed{}``; s1K's AIME solutions are the bare number). Every source is refused in
one sentence before any row is produced: an unknown local path, a hub id without a mapping, a mapped field the
dataset lacks (its features, its Parquet schema or its first row). Memory stays bounded: one row at a time.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields

from benchmarks.data.synthetic import DEFAULT_COUNT, arithmetic_problem, counting_problem, parse_name, solution_steps
from curation.schema import Drop, Question
from engine.answers import extract_answer
from engine.errors import ConfigError, TTScaleError
from engine.jsonl import iter_jsonl

STAGE = "pool"
TARGETS = ("question", "solution", "answer", "source", "thinking", "attempt")
LOCAL_SUFFIXES = (".jsonl", ".parquet")
PARQUET_BATCH = 1024  # rows decoded at a time from a Parquet row group
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class KnownSource:
    """A hub dataset the pool knows: its field mapping, config and split, and who wrote its traces (if any)."""

    fields: dict
    config: str | None = None
    split: str = "train"
    trace_model: str | None = None  # the model that wrote the thinking/attempt columns (the dataset card's)
    extra: tuple[str, ...] = ()  # further columns kept in metadata["pool"]


KNOWN = {
    "AI-MO/NuminaMath-CoT": KnownSource({"question": "problem", "solution": "solution", "source": "source"}),
    "simplescaling/s1K": KnownSource({"question": "question", "solution": "solution", "source": "source_type",
                                      "thinking": "thinking_trajectories", "attempt": "attempt"},
                                     trace_model="gemini-2.0-flash-thinking-exp", extra=("cot_type",)),
    "simplescaling/s1K-1.1": KnownSource({"question": "question", "solution": "solution", "source": "source_type",
                                          "thinking": "deepseek_thinking_trajectory", "attempt": "deepseek_attempt"},
                                         trace_model="deepseek-r1", extra=("cot_type",)),
    "GAIR/LIMO": KnownSource({"question": "question", "solution": "solution", "answer": "answer"}),
}
# A local file without a mapping: the question from the first of these fields it has, solution and answer if present.
DEFAULT_QUESTION_FIELDS = ("question", "problem")


def parse_fields(text: str | dict | None, where: str, need_question: bool = True) -> dict[str, str]:
    """``"question=problem,answer=answer"`` (or a dict) as ``{target: field}``; targets are :data:`TARGETS`.

    Refuses an entry without ``=``, an unknown target, an empty field name and (``need_question``, all but overrides
    of a known mapping) a mapping without ``question``.
    """
    if text is None or text == "" or text == {}:
        return {}
    if isinstance(text, dict):
        pairs = dict(text)
    else:
        pairs = {}
        for part in str(text).split(","):
            if "=" not in part:
                raise TTScaleError(f"{where}: field mapping entry {part.strip()!r} has no '='; write target=field, "
                                   "e.g. fields=question=problem,solution=solution")
            target, name = (x.strip() for x in part.split("=", 1))
            pairs[target] = name
    for target, name in pairs.items():
        if target not in TARGETS:
            raise TTScaleError(f"{where}: field mapping names unknown target {target!r}; targets are {', '.join(TARGETS)}")
        if not isinstance(name, str) or not name:
            raise TTScaleError(f"{where}: field mapping target {target!r} names no field; write {target}=<field>")
    if need_question and "question" not in pairs:
        raise TTScaleError(f"{where}: the field mapping has no question field; add question=<field>")
    return pairs


@dataclass(frozen=True)
class SourceSpec:
    """One source of the pool. Refuses (``ConfigError``) an empty name, a limit below 1 and a non-integer seed."""

    name: str = field(default="", metadata={"help": "hub id, .jsonl or .parquet path, or synthetic[:task[:difficulty]]"})
    fields: str | None = field(default=None, metadata={
        "help": "field mapping question=...,solution=...,answer=...,source=...[,thinking=...,attempt=...] "
                "(needed for hub ids the pool does not know; overrides a known one)"})
    split: str | None = field(default=None, metadata={"help": "hub split (default: the known one, else train)"})
    config: str | None = field(default=None, metadata={"help": "hub dataset configuration (subset)"})
    limit: int | None = field(default=None, metadata={"help": "keep the first N rows (synthetic: generate N, default 100)"})
    seed: int = field(default=0, metadata={"help": "seed of the synthetic generator"})
    label: str | None = field(default=None, metadata={"help": "Question.source of its rows (default: the name)"})

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("`name` of a pool source is empty; give a hub id, a .jsonl/.parquet path or synthetic")
        if self.limit is not None and (not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1):
            raise ConfigError(f"`limit` of pool source {self.name} must be an integer >= 1, got {self.limit!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"`seed` of pool source {self.name} must be an integer, got {self.seed!r}")

    @classmethod
    def parse(cls, text: str, **defaults) -> SourceSpec:
        """``"NAME key=value ..."`` (shell quoting allowed) as a spec, ``defaults`` filling the keys it does not set;
        refuses unknown keys and non-integer numbers."""
        try:
            parts = shlex.split(text)
        except ValueError as exc:
            raise TTScaleError(f"pool source {text!r}: cannot split it ({exc}); quote a path with spaces once") from exc
        if not parts:
            raise TTScaleError("a pool source is empty; give a hub id, a .jsonl/.parquet path or synthetic")
        keys = {f.name for f in fields(cls)} - {"name"}
        values: dict = dict(defaults)
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            if not eq or key not in keys:
                raise TTScaleError(f"pool source {text!r}: {part!r} is not one of {', '.join(sorted(k + '=...' for k in keys))}")
            if key in ("limit", "seed"):
                try:
                    value = int(value)
                except ValueError:
                    raise TTScaleError(f"pool source {text!r}: {key}={value!r} must be an integer") from None
            values[key] = value
        return cls(parts[0], **values)


@dataclass(frozen=True)
class PoolConfig:
    """The pool's sources (one ``--source`` each) and the defaults they share. Refuses an empty source list."""

    sources: tuple[str, ...] = field(default=(), metadata={
        "help": "a source: NAME [fields=...] [split=...] [config=...] [limit=N] [seed=S] [label=...]; "
                "NAME is a hub id, a .jsonl/.parquet path or synthetic[:task[:difficulty]] (several allowed)",
        "flag": "--source", "action": "append"})
    limit: int | None = field(default=None, metadata={"help": "default row limit of every source that sets none"})
    seed: int = field(default=0, metadata={"help": "default seed of synthetic sources"})

    def __post_init__(self):
        if not self.sources:
            raise ConfigError("`sources` is empty; give at least one pool source")
        if self.limit is not None and (not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1):
            raise ConfigError(f"`limit` must be an integer >= 1, got {self.limit!r}")

    def specs(self) -> list[SourceSpec]:
        """Each source parsed (:meth:`SourceSpec.parse`), with this config's limit and seed where it sets none."""
        return [SourceSpec.parse(text, limit=self.limit, seed=self.seed) for text in self.sources]


# ─── opening sources ───────────────────────────────────────────────────────────────────────────────────────────


@dataclass
class _Opened:
    """A checked source: its rows (an iterator of dicts, first row included) and how to turn one into a Question."""

    spec: SourceSpec
    rows: Iterator
    mapping: dict
    optional: tuple[str, ...]  # targets filled only when the row has the field (local files without a mapping)
    trace_model: str | None = None
    extra: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.spec.label or self.spec.name


def _kind(name: str) -> str:
    if name == "synthetic" or name.startswith("synthetic:"):
        return "synthetic"
    path = os.path.expanduser(name)
    if name.endswith(LOCAL_SUFFIXES) or os.path.exists(path):
        return "local"
    if name in KNOWN or _HUB_ID.match(name):
        return "hub"
    raise TTScaleError(f"pool source {name!r}: not a hub id (owner/name), an existing .jsonl/.parquet file or synthetic; "
                       "check the spelling or the path")


def _check_fields(spec: SourceSpec, mapping: dict, optional: tuple, have: Iterable[str], what: str) -> None:
    have = set(have)
    for target, name in mapping.items():
        if target not in optional and name not in have:
            raise TTScaleError(f"pool source {spec.name}: {what} has no field {name!r} (mapped to {target}); its fields are "
                               f"{', '.join(sorted(have))}, so map one with fields={target}=<field>")


def _default_local_mapping(spec: SourceSpec, have: Iterable[str]) -> tuple[dict, tuple]:
    have = set(have)
    question = next((f for f in DEFAULT_QUESTION_FIELDS if f in have), None)
    if question is None:
        raise TTScaleError(f"pool source {spec.name}: no question or problem field (its fields are {', '.join(sorted(have))}); "
                           "give fields=question=<field>[,solution=...,answer=...]")
    return {"question": question, "solution": "solution", "answer": "answer"}, ("solution", "answer")


def _peek(rows: Iterator):
    """The first row and an iterator over all rows (the first included); ``(None, empty)`` for no rows."""
    first = next(rows, None)
    return first, (itertools.chain([first], rows) if first is not None else iter(()))


def _open_jsonl(spec: SourceSpec, path: str) -> _Opened:
    first, rows = _peek(iter_jsonl(path, what=f"pool source {spec.name}", hint="give one JSON object per line"))
    if first is None:
        raise TTScaleError(f"pool source {spec.name}: the file holds no rows; give a .jsonl file with one JSON object per line")
    mapping = parse_fields(spec.fields, f"pool source {spec.name}")
    optional: tuple = ()
    if not mapping:
        mapping, optional = _default_local_mapping(spec, first)
    _check_fields(spec, mapping, optional, first, "its first row")
    return _Opened(spec, rows, mapping, optional)


def _open_parquet(spec: SourceSpec, path: str) -> _Opened:
    import pyarrow.parquet as pq  # deferred: pyarrow is heavy and only Parquet sources need it

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # not Parquet, truncated, unreadable: one sentence either way
        raise TTScaleError(f"pool source {spec.name}: cannot read it as Parquet ({type(exc).__name__}: {str(exc)[:120]}); "
                           "give a .parquet file") from exc
    names = handle.schema_arrow.names
    mapping = parse_fields(spec.fields, f"pool source {spec.name}")
    optional: tuple = ()
    if not mapping:
        mapping, optional = _default_local_mapping(spec, names)
    _check_fields(spec, mapping, optional, names, "its schema")
    columns = sorted({n for n in mapping.values() if n in names})

    def rows() -> Iterator[dict]:
        for batch in handle.iter_batches(batch_size=PARQUET_BATCH, columns=columns):  # row group by row group
            yield from batch.to_pylist()

    return _Opened(spec, rows(), mapping, optional)


def _open_hub(spec: SourceSpec) -> _Opened:
    known = KNOWN.get(spec.name)
    mapping = dict(known.fields) if known else {}
    mapping.update(parse_fields(spec.fields, f"pool source {spec.name}", need_question=known is None))
    if not mapping:
        raise TTScaleError(f"pool source {spec.name}: a hub dataset the pool does not know ({', '.join(KNOWN)} it does); "
                           "give its field mapping, e.g. fields=question=problem,solution=solution,answer=answer")
    split = spec.split or (known.split if known else "train")
    config = spec.config or (known.config if known else None)
    try:
        import datasets  # deferred: heavy (pyarrow, fsspec), needed only when a source is read from the hub

        ds = datasets.load_dataset(spec.name, config, split=split, streaming=True)
        features = getattr(ds, "features", None)
        if features:
            first, rows = None, iter(ds)
            have: Iterable[str] = features.keys()
        else:  # a streamed JSON dataset may not declare its features: its first row does
            first, rows = _peek(iter(ds))
            have = first or {}
    except Exception as exc:  # offline, gated, renamed, no such split: all end the same way for the user
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TTScaleError(f"pool source {spec.name}: the hub dataset (split {split}) could not be opened ({reason}); "
                           "check the id, split and config, log in for a gated one, or give a local copy") from exc
    _check_fields(spec, mapping, (), have, "the dataset" if features else "its first row")
    return _Opened(spec, rows, mapping, (), known.trace_model if known else None, known.extra if known else ())


def _synthetic_questions(spec: SourceSpec, task: str, difficulty: int) -> Iterator[Question]:
    make = arithmetic_problem if task == "arith" else counting_problem
    label = spec.label or spec.name
    for i in range(spec.limit or DEFAULT_COUNT):
        p = make(i, difficulty, spec.seed)
        yield Question(p.question, "\n".join(solution_steps(p.question)), p.answer, label,
                       {STAGE: {"source": spec.name, "row": i, "seed": spec.seed, **p.meta}})


def open_source(spec: SourceSpec) -> _Opened | Iterator[Question]:
    """Open one source and check it: the path exists and is JSONL or Parquet, the mapping is known or given, every
    mapped field is in the dataset's features / schema / first row. Refuses each of those in one sentence."""
    kind = _kind(spec.name)
    if kind == "synthetic":
        if spec.fields:
            raise TTScaleError(f"pool source {spec.name}: synthetic questions have fixed fields; drop fields=")
        try:
            task, difficulty = parse_name(spec.name)
        except TTScaleError as exc:
            raise TTScaleError(f"pool source {spec.name}: {str(exc).split(': ', 1)[-1]}") from None
        return _synthetic_questions(spec, task, difficulty)
    if kind == "hub":
        return _open_hub(spec)
    path = os.path.expanduser(spec.name)
    if not os.path.isfile(path):
        raise TTScaleError(f"pool source {spec.name}: no such file; give an existing .jsonl or .parquet file")
    if path.endswith(".jsonl"):
        return _open_jsonl(spec, path)
    if path.endswith(".parquet"):
        return _open_parquet(spec, path)
    raise TTScaleError(f"pool source {spec.name}: only .jsonl and .parquet files are read; convert it or rename it")


# ─── rows to questions ─────────────────────────────────────────────────────────────────────────────────────────


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):  # s1K's thinking_trajectories: a list holding the trajectory
        return "\n".join(str(v) for v in value)
    return str(value)


def _question(src: _Opened, row: dict, index: int, on_drop: Callable[[Drop], None] | None) -> Question | None:
    spec, m = src.spec, src.mapping
    values = {}
    for target, name in m.items():
        if name in row:
            values[target] = row[name]
        elif target not in src.optional:
            raise TTScaleError(f"pool source {spec.name}, row {index + 1} has no field {name!r} (mapped to {target}); "
                               "every row needs it, or map another field")
    question = values.get("question")
    if not isinstance(question, str) or not question.strip():
        if on_drop is None:
            raise TTScaleError(f"pool source {spec.name}, row {index + 1}: the question field {m['question']!r} is empty "
                               "or not text; fix the row or pass on_drop")
        on_drop(Drop("", STAGE, "empty_question", f"row {index + 1} has no question text ({question!r:.40})", src.label))
        return None
    solution = _text(values.get("solution"))
    answer = _text(values["answer"]) if "answer" in values else (extract_answer(solution) or "")
    sub = _text(values.get("source")).strip() if "source" in values else ""
    pool = {"source": spec.name, "row": index}
    for k in src.extra:
        if k in row:
            pool[k] = row[k]
    meta: dict = {STAGE: pool}
    if "thinking" in values or "attempt" in values:
        attempt = _text(values.get("attempt"))
        meta["traces"] = {"samples": [{"thinking": _text(values.get("thinking")), "attempt": attempt,
                                       "answer": extract_answer(attempt), "thinking_tokens": None,
                                       "finish_reason": "stop", "model": src.trace_model or spec.name}],
                          "imported_from": spec.name}
    return Question(question, solution, answer, f"{src.label}/{sub}" if sub else src.label, meta)


def _source_questions(src: _Opened, on_drop) -> Iterator[Question]:
    rows = src.rows if src.spec.limit is None else itertools.islice(src.rows, src.spec.limit)
    for index, row in enumerate(rows):
        q = _question(src, row, index, on_drop)
        if q is not None:
            yield q


def iter_pool(sources: PoolConfig | Iterable[SourceSpec | str],
              on_drop: Callable[[Drop], None] | None = None) -> Iterator[Question]:
    """Stream the questions of every source, in order, one row at a time.

    ``sources`` is a :class:`PoolConfig` or specs / source strings (:meth:`SourceSpec.parse`). Every source is opened
    and checked (see :func:`open_source`) when this is called, before any row is produced. A row with an empty
    question goes to ``on_drop`` (reason ``empty_question``) or, without one, is refused; a later row missing a
    mapped field is refused naming its row.
    """
    specs = sources.specs() if isinstance(sources, PoolConfig) else [
        s if isinstance(s, SourceSpec) else SourceSpec.parse(s) for s in sources]
    if not specs:
        raise TTScaleError("the pool has no sources; give at least one hub id, .jsonl/.parquet path or synthetic")
    opened = [open_source(s) for s in specs]
    return _stream(opened, on_drop)


def _stream(opened: list, on_drop) -> Iterator[Question]:
    for src in opened:
        yield from (src if not isinstance(src, _Opened) else _source_questions(src, on_drop))
