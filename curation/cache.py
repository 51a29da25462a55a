"""The result of an expensive curation stage (traces, grading, classification) per question, on disk: a killed run
redoes nothing finished and loses nothing, and several processes share the work.

    cache = StageCache(work_dir, "traces", {"model": "smollm2-135m", "samples": 4, "max_thinking_tokens": 512})
    if q.id not in cache:
        cache.put(q.id, result)        # one fsynced JSONL line, written once the question's whole result is ready
    cache.get(q.id), cache.done

Layout of ``WORK/cache/`` (``<hash>``: :func:`settings_hash` of the settings, which hold the model)::

    <stage>-<hash>.json              {"stage": ..., "settings": {...}}: what the hash stands for
    <stage>-<hash>.jsonl             {"id": qid, "result": {...}} rows of a one-process run (and rows merged by rank 0)
    <stage>-<hash>.rank<r>.jsonl     rows appended by process r of a multi-process run

Other settings are another file, so changing a budget never mixes results, and going back to the old settings finds
their rows again. Crash safety is :class:`engine.jsonl.JsonlWriter`'s: one flushed and fsynced line per row, and a
torn last line (a kill mid-write) is skipped by readers and cut off before the next append. A row is never written
twice: :meth:`StageCache.put` skips an id already on disk.

Several processes (``accelerate launch`` / ``torchrun``, as ``ttscale eval`` runs them, see
:func:`benchmarks.eval.runner.processes`): each opens ``StageCache(work, stage, settings, rank, world)``, takes its
questions with :func:`shard` (round robin, from :mod:`benchmarks.eval.store`), and appends to its own rank file; every
reader reads the one-process file and every rank file, so a run may resume with another number of processes. After a
barrier every rank :meth:`~StageCache.reload`\\ s to see all rows; rank 0 may then :meth:`~StageCache.merge` the rank
files into the one file. :func:`run_units` is that whole flow for a stage that runs a model over batches of questions:

    1. plan    fixed units over the input order (:func:`plan_units`); a sampled unit's seed comes from its question ids
               (:func:`unit_seed`), so a unit re-run, by any process, gives the same result
    2. open    barrier, so that every process saw the same cached ids; the units with an uncached question are
               sharded round robin
    3. run     the worker is built only when this process has work (the model loads then), unit by unit; each
               question's row is appended as soon as its unit returns; progress bar with ETA on rank 0
    4. finish  barrier; every process re-reads every rank's rows; barrier; rank 0 merges the rank files

A unit cut short by a kill (some of its rows written) runs again for its unwritten questions only, under the unit's
seed: nothing finished is generated twice. Greedy results equal an uninterrupted run (the engine's greedy rows do not
depend on their batch); sampled draws of those few questions come from a smaller batch, so they are other draws of
the same distribution. Torch-free.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from benchmarks.eval.store import canonical_json, shard
from engine.errors import TTScaleError
from engine.jsonl import JsonlWriter, read_jsonl, write_json_atomic, write_jsonl_atomic

__all__ = ["StageCache", "plan_units", "run_units", "settings_hash", "shard", "unit_seed"]

_STAGE = re.compile(r"^[a-z][a-z0-9_]*$")
REPAIR_HINT = "the cache file was edited or corrupted; delete that line (the question is then redone) or the file"


def settings_hash(settings: dict) -> str:
    """16 hex digits of the SHA-256 of the settings' canonical JSON (sorted keys): equal settings, equal hash.
    Refuses settings that are not a dict of JSON values."""
    if not isinstance(settings, dict):
        raise TTScaleError(f"stage settings must be a dict of JSON values, got {type(settings).__name__}")
    return hashlib.sha256(canonical_json(settings).encode("utf-8")).hexdigest()[:16]


class StageCache:
    """One stage's results under one set of settings, keyed by question id; this process appends, every file is read.

    ``settings`` must hold everything that changes a result (model, budgets, samples, sampling, seed, format) and
    nothing that does not (batch size only when it changes numerics, never the output path or process count).
    Refuses a stage name that is not a lower-case identifier, settings that are not JSON, rank/world out of range,
    a work directory that cannot be created, and a settings file that holds other settings (a hash collision or an
    edited file).
    """

    def __init__(self, work_dir: str, stage: str, settings: dict, rank: int = 0, world: int = 1):
        if not isinstance(stage, str) or not _STAGE.match(stage):
            raise TTScaleError(f"stage name {stage!r} must be a lower-case identifier such as 'traces' or 'difficulty'")
        shard([], rank, world)  # validates rank and world
        self.stage, self.settings, self.rank, self.world = stage, dict(settings), rank, world
        self.hash = settings_hash(self.settings)
        self.folder = os.path.join(work_dir, "cache")
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            raise TTScaleError(f"work directory {work_dir}: cannot create {self.folder} ({exc.strerror or exc}); "
                               "give a writable work directory") from exc
        self.prefix = os.path.join(self.folder, f"{stage}-{self.hash}")
        self.path = f"{self.prefix}.jsonl" if world == 1 else f"{self.prefix}.rank{rank}.jsonl"
        self._check_or_write_settings()
        self._rows: dict[str, dict] = {}
        self._writer: JsonlWriter | None = None
        self._closed = False
        self.reload()

    # -- reading
    def paths(self) -> list[str]:
        """Every file of these settings that exists: the one-process file, then the rank files by rank."""
        main = f"{self.prefix}.jsonl"
        ranks = []
        for p in glob.glob(glob.escape(self.prefix) + ".rank*.jsonl"):
            m = re.search(r"\.rank(\d+)\.jsonl$", p)
            if m:
                ranks.append((int(m.group(1)), p))
        return ([main] if os.path.exists(main) else []) + [p for _, p in sorted(ranks)]

    def reload(self) -> int:
        """Read every file again (another rank's new rows included); the first copy of an id wins. Returns the count.
        Refuses a line that is not a cache row (a torn last line is skipped, see :mod:`engine.jsonl`)."""
        rows: dict[str, dict] = {}
        for path in self.paths():
            for number, row in enumerate(read_jsonl(path, what=f"{self.stage} cache", hint=REPAIR_HINT), start=1):
                if not isinstance(row.get("id"), str) or not isinstance(row.get("result"), dict):
                    raise TTScaleError(f"{self.stage} cache {path}, row {number}: not an {{'id': str, 'result': dict}} row; "
                                       f"{REPAIR_HINT}")
                rows.setdefault(row["id"], row["result"])
        self._rows = rows
        return len(rows)

    def get(self, qid: str, default=None):
        """The cached result of question ``qid``, or ``default`` when it has none yet."""
        return self._rows.get(qid, default)

    def __contains__(self, qid) -> bool:
        return qid in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def done(self) -> int:
        """How many questions have a result (this process's and, as of the last read, every other's)."""
        return len(self._rows)

    def ids(self) -> set[str]:
        """The ids of every cached question."""
        return set(self._rows)

    # -- writing
    def put(self, qid: str, result: dict) -> bool:
        """Append one question's finished result (one fsynced line); False, writing nothing, if ``qid`` is cached.
        Refuses an id that is not text, a result that is not a dict of JSON values (NaN included), and a closed cache."""
        if not isinstance(qid, str) or not qid:
            raise TTScaleError(f"a cache id must be a non-empty string (a Question.id), got {qid!r}")
        if not isinstance(result, dict):
            raise TTScaleError(f"the {self.stage} result of question {qid} must be a dict, got {type(result).__name__}")
        if qid in self._rows:
            return False
        row = {"id": qid, "result": result}
        try:  # refuse non-JSON values before anything is written, without quoting a whole trace back
            json.dumps(row, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TTScaleError(f"the {self.stage} result of question {qid} cannot be stored as JSON ({exc}); "
                               "use strings, finite numbers, booleans, lists and dicts") from None
        if self._closed:
            raise TTScaleError(f"the {self.stage} cache {self.path} is closed; open a new StageCache to add results")
        if self._writer is None:
            self._writer = JsonlWriter(self.path, fsync=True, dumps_fn=canonical_json)  # cuts a torn last line first
        self._writer.append(row)
        self._rows[qid] = json.loads(canonical_json(result))  # what a reader will see: a JSON copy, not the caller's object
        return True

    def merge(self) -> int:
        """Rank 0 only: fold every rank file into the one-process file (temporary file, rename), then delete the rank
        files; returns the number of rows. Call it once every process closed its cache (after a barrier). Refuses
        other ranks."""
        if self.rank != 0:
            raise TTScaleError(f"merge() runs on rank 0 only (this is rank {self.rank}); wait for everyone, then merge on rank 0")
        self._close_writer()
        self.reload()
        main = f"{self.prefix}.jsonl"
        write_jsonl_atomic(main, ({"id": k, "result": v} for k, v in self._rows.items()), dumps_fn=canonical_json)
        for p in self.paths():
            if p != main:
                os.remove(p)
        return len(self._rows)

    def close(self) -> None:
        """Close this process's file (idempotent); the cache stays readable, :meth:`put` is refused."""
        self._close_writer()
        self._closed = True

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> StageCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- settings
    def _check_or_write_settings(self) -> None:
        path = f"{self.prefix}.json"
        record = {"stage": self.stage, "settings": self.settings}
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    stored = json.load(fh)
            except (OSError, json.JSONDecodeError) as exc:
                raise TTScaleError(f"{self.stage} cache settings {path} cannot be read ({exc}); delete it and its .jsonl files") from exc
            if canonical_json(stored) != canonical_json(record):
                raise TTScaleError(f"{self.stage} cache settings {path} hold other settings than the ones hashed to "
                                   f"{self.hash}; the file was edited, so delete it and its .jsonl files")
            return
        write_json_atomic(path, record, indent=2, sort_keys=True, tag=f".{self.rank}")


# ------------------------------------------------------------------------------------------- units of work
def plan_units(items: Sequence, size: int) -> list[list]:
    """Consecutive runs of ``size`` items (the last may be shorter): the fixed units a stage runs as a whole.
    Refuses ``size`` < 1."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise TTScaleError(f"a unit holds at least one question, got size={size!r}")
    items = list(items)
    return [items[i: i + size] for i in range(0, len(items), size)]


def unit_seed(seed: int, ids: Sequence[str]) -> int:
    """The seed of a sampled unit: a hash of the run's seed and its question ids (not its position), in [0, 2**32)."""
    return int(hashlib.sha256(f"{seed}:{','.join(ids)}".encode("utf-8")).hexdigest()[:8], 16)


def run_units(cache: StageCache, questions: Sequence, size: int, make_worker: Callable[[], Callable], procs, *,
              progress: bool = True, desc: str = "", log: Callable[[str], None] | None = None) -> int:
    """Give every question of ``questions`` (objects with an ``id``) a result in ``cache``; returns how many this
    process added. The flow is the module docstring's (plan, open, run, finish).

    ``make_worker()`` is called once, only when this process has units to run, and returns ``work(pending, unit) ->
    [result, ...]``: one dict per question of ``pending`` (the unit's uncached questions, in order; the whole unit
    unless a kill cut it short), ``unit`` the whole unit (its seed comes from all its ids). ``procs`` is a :class:`benchmarks.eval.runner.Processes`
    (rank, world, ``wait()``). Refuses a worker that returns the wrong number of results; whatever the worker raises
    propagates after the finished rows are on disk.
    """
    procs.wait()  # every process read the same cache before anyone appends
    todo = [u for u in plan_units(questions, size) if any(q.id not in cache for q in u)]
    mine = shard(todo, procs.rank, procs.world)
    if log is not None and procs.rank == 0:
        log(f"{len(questions)} questions, {cache.done} already cached, {sum(len(u) for u in todo)} to do over "
            f"{procs.world} process{'es' if procs.world > 1 else ''}; cache {cache.path}")
    added = 0
    bar = tqdm(total=sum(1 for u in mine for q in u if q.id not in cache), desc=desc or cache.stage, unit="q", dynamic_ncols=True,
               disable=not (progress and procs.rank == 0 and mine))
    try:
        work = make_worker() if mine else None
        for unit in mine:
            pending = [q for q in unit if q.id not in cache]  # a unit cut short by a kill: only what it did not finish
            results = work(pending, unit)
            if len(results) != len(pending):
                raise TTScaleError(f"the {cache.stage} worker returned {len(results)} results for {len(pending)} questions")
            for q, result in zip(pending, results):
                added += cache.put(q.id, result)
            bar.update(len(pending))
    finally:
        bar.close()
        cache.close()  # every finished question is on disk; a rerun resumes from there
    procs.wait()  # every rank's rows are written
    cache.reload()
    if procs.world > 1:
        procs.wait()  # every rank read them before rank 0 folds the files together
        if procs.rank == 0:
            cache.merge()
    return added
