"""The run directory of an evaluation: its configuration and one row per (problem, method, setting), resumable.

Layout of ``OUT/``::

    config.json              {"fingerprint": "<sha256 of the canonical config>", "config": {...}}
    samples.rank{r}.jsonl    rows appended by process r while the run goes (one process: rank 0)
    samples.jsonl            all rows, merged by rank 0 at the end, sorted by problem, method, setting (``sort_key``)

Crash safety. Each row is one ``json.dumps`` line (JSON escapes newlines, so a row never contains one) written
with a single ``write`` and then flushed and fsynced: a row is on disk completely or it is a torn last line
without its ``\\n``. Readers ignore a torn last line; a process reopening its own shard cuts it off before
appending. A killed run restarted on the same directory with the same config skips every key already present
in ``samples.jsonl`` or any shard, so it loses no finished row and writes none twice. A different config in an
existing directory is refused. ``merge`` writes ``samples.jsonl`` through a temporary file and ``os.replace``
before deleting shards, so a kill during the merge leaves rows in shards, in the merged file, or in both
(reading de-duplicates by key, first copy wins: merged file, then shards by rank).

Several processes (``accelerate launch``): each opens ``RunStore(out, config, rank, world)``, takes its items
with :func:`shard`, and appends to its own shard; after ``accelerator.wait_for_everyone()`` rank 0 calls
:meth:`RunStore.merge`. Rows do not record the rank, so two shards merge to the same file as one process.
Resuming with another number of processes works: every reader looks at every ``samples.rank*.jsonl``.

Sample row schema (one JSON object per line; ``new_row`` builds one)::

    problem_id       str    Problem.id
    method           str    budget | token-conditional | step-conditional | class-conditional | rejection |
                            majority | best-of-n | weighted | beam | dvts | compute-optimal | (any other name)
    setting          dict   JSON scalars, e.g. {"max_thinking_tokens": 256} or {"n": 4}; its canonical JSON
                            (sorted keys, no spaces) is part of the key. Bounds for s1's Control are read from
                            "max_thinking_tokens" / "min_thinking_tokens" when present.
    scaling          str    "sequential" (x = thinking tokens) or "parallel" (x = N); defaults per method
    compute          number this sample's x-axis value: its thinking tokens (sequential) or N (parallel)
    correct          bool   the extracted answer matches the gold answer
    prompt           str    the full prompt text given to the model
    generation       str    the full generated text (thinking and answer; for parallel methods the chosen one)
    extracted        str|None  the extracted answer
    gold             str    the reference answer
    thinking_tokens  int    tokens generated inside thinking (summed over the N samples for parallel methods)
    answer_tokens    int    tokens generated after thinking
    wall_s           float  wall time spent on this (problem, setting)
    extra            dict   anything method-specific (ignores used, candidates, verifier scores, ...)

The key of a row is ``(problem_id, method, canonical_json(setting))``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence

from engine.errors import TTScaleError
from engine.jsonl import JsonlWriter, read_jsonl, write_json_atomic, write_jsonl_atomic

CONFIG = "config.json"
SAMPLES = "samples.jsonl"
SHARD_GLOB = "samples.rank*.jsonl"

SEQUENTIAL_METHODS = ("budget", "token-conditional", "step-conditional", "class-conditional", "rejection")
PARALLEL_METHODS = ("majority", "best-of-n", "weighted", "beam", "dvts", "compute-optimal")
SCALING_KINDS = ("sequential", "parallel")

REPAIR_HINT = "the file was edited or corrupted, so repair or delete that line before resuming"
REQUIRED = {"problem_id": str, "method": str, "setting": dict, "scaling": str, "compute": (int, float), "correct": bool}


# ------------------------------------------------------------------------------------------- helpers
def canonical_json(obj) -> str:
    """Compact JSON with sorted keys: the same value always gives the same string. Refuses non-JSON values."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TTScaleError(f"value {obj!r} cannot be stored as JSON ({exc}); use strings, numbers, booleans, lists and dicts") from exc


def config_fingerprint(config: dict) -> str:
    """sha256 (hex) of the canonical JSON of a run configuration."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def row_key(problem_id: str, method: str, setting: dict) -> tuple[str, str, str]:
    """The identity of a row: ``(problem_id, method, canonical_json(setting))``."""
    return str(problem_id), str(method), canonical_json(setting)


def shard(items: Sequence, rank: int, world: int) -> list:
    """The items process ``rank`` of ``world`` handles: every world-th item starting at rank (round robin).

    Deterministic, disjoint, and together covering all items. Refuses world < 1 and rank outside [0, world).
    """
    if not isinstance(world, int) or world < 1:
        raise TTScaleError(f"world={world!r}: the number of processes must be a positive integer")
    if not isinstance(rank, int) or not 0 <= rank < world:
        raise TTScaleError(f"rank={rank!r} must be an integer in [0, {world}) for world={world}")
    return list(items)[rank::world]


def scaling_of(method: str) -> str:
    """``sequential`` or ``parallel`` for a known method; refuses an unknown one (pass ``scaling=`` instead)."""
    if method in SEQUENTIAL_METHODS:
        return "sequential"
    if method in PARALLEL_METHODS:
        return "parallel"
    raise TTScaleError(f"method={method!r} is not a known method ({', '.join(SEQUENTIAL_METHODS + PARALLEL_METHODS)}); "
                       "pass scaling='sequential' or 'parallel' explicitly")


def new_row(problem_id: str, method: str, setting: dict, compute: float, correct: bool, *, scaling: str | None = None,
            **fields) -> dict:
    """A sample row (see the module docstring), with ``scaling`` filled from the method when not given.

    Extra keyword fields (prompt, generation, extracted, gold, thinking_tokens, answer_tokens, wall_s, extra, ...)
    are copied as they are. Refuses a row that :func:`validate_row` refuses.
    """
    row = {"problem_id": str(problem_id), "method": method, "setting": dict(setting),
           "scaling": scaling if scaling is not None else scaling_of(method), "compute": compute, "correct": bool(correct)}
    row.update(fields)
    validate_row(row)
    return row


def validate_row(row: dict) -> None:
    """Refuses a row lacking a required field, with a field of the wrong type, or with an unknown ``scaling``."""
    if not isinstance(row, dict):
        raise TTScaleError(f"a sample row must be a dict, got {type(row).__name__}")
    for name, kind in REQUIRED.items():
        if name not in row:
            raise TTScaleError(f"sample row lacks the field {name!r} (it has {', '.join(sorted(row))}); build rows with store.new_row")
        value = row[name]
        if not isinstance(value, kind) or (name == "compute" and (isinstance(value, bool) or not math.isfinite(value))):
            raise TTScaleError(f"sample row field {name!r}={value!r} has the wrong type; it must be {getattr(kind, '__name__', 'a finite number')}")
    if row["scaling"] not in SCALING_KINDS:
        raise TTScaleError(f"sample row field 'scaling'={row['scaling']!r}; use 'sequential' or 'parallel'")


def natural_key(text: str) -> tuple:
    """Sort key in which digit runs compare as numbers: "test/algebra/9" before "test/algebra/10"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def sort_key(row: dict) -> tuple:
    """Order of rows in the merged ``samples.jsonl``: problem, method, canonical setting (numbers in natural order)."""
    return natural_key(str(row["problem_id"])), row["method"], natural_key(canonical_json(row["setting"]))


def shard_paths(out_dir: str) -> list[str]:
    def rank_of(path):
        m = re.search(r"samples\.rank(\d+)\.jsonl$", path)
        return int(m.group(1)) if m else -1

    return sorted((p for p in glob.glob(os.path.join(out_dir, SHARD_GLOB)) if rank_of(p) >= 0), key=rank_of)


def read_samples(out_dir: str) -> list[dict]:
    """All rows of a run directory: ``samples.jsonl`` plus any unmerged shards, de-duplicated by key and sorted.

    Works while a run is still going (a torn last line is skipped). Refuses a directory that does not exist.
    """
    if not os.path.isdir(out_dir):
        raise TTScaleError(f"run directory {out_dir!r} does not exist; give the --out directory of an evaluation run")
    paths = ([os.path.join(out_dir, SAMPLES)] if os.path.exists(os.path.join(out_dir, SAMPLES)) else []) + shard_paths(out_dir)
    seen: dict[tuple, dict] = {}
    for path in paths:
        for row in read_jsonl(path, what="run file", hint=REPAIR_HINT):
            validate_row(row)
            seen.setdefault(row_key(row["problem_id"], row["method"], row["setting"]), row)
    return sorted(seen.values(), key=sort_key)


def read_config(out_dir: str) -> dict | None:
    """The ``config`` stored in ``OUT/config.json``, or None when there is none. Refuses an unreadable file."""
    path = os.path.join(out_dir, CONFIG)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            stored = json.load(fh)
        return stored["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TTScaleError(f"{path} is not a ttscale run configuration ({exc}); use a fresh --out directory") from exc


def _flat(obj, prefix="") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): obj}


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- store
class RunStore:
    """One process's handle on a run directory: checks the config, knows the finished keys, appends rows.

    ``config`` must hold everything that changes results (model, dataset, limit, seed, format, sampling, ...)
    and nothing that does not (the number of processes, the output path), because a different config is
    refused on resume. Refuses rank/world out of range, a config that is not JSON, and a directory holding
    another configuration.
    """

    def __init__(self, out_dir: str, config: dict, rank: int = 0, world: int = 1):
        shard([], rank, world)  # validates rank and world
        if not isinstance(config, dict):
            raise TTScaleError(f"config must be a dict of run settings, got {type(config).__name__}")
        self.out_dir, self.config, self.rank, self.world = out_dir, config, rank, world
        self.fingerprint = config_fingerprint(config)
        os.makedirs(out_dir, exist_ok=True)
        self._check_or_write_config()
        self.shard_path = os.path.join(out_dir, f"samples.rank{rank}.jsonl")
        self.done: set[tuple[str, str, str]] = {row_key(r["problem_id"], r["method"], r["setting"]) for r in read_samples(out_dir)}
        self._fh = JsonlWriter(self.shard_path, fsync=True, dumps_fn=canonical_json)  # cuts a torn last row first

    # -- configuration
    def _check_or_write_config(self) -> None:
        path = os.path.join(self.out_dir, CONFIG)
        if os.path.exists(path):
            stored = read_config(self.out_dir)
            if config_fingerprint(stored) != self.fingerprint:
                old, new = _flat(stored), _flat(self.config)
                diff = sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))
                shown = "; ".join(f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}" for k in diff[:4])
                more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
                raise TTScaleError(f"--out {self.out_dir} already holds a run with another configuration ({shown}{more}); "
                                   "use a new output directory, or the same settings to resume that run")
            return
        # Every rank may race here; each writes the same bytes through its own temporary file, so any winner is right.
        write_json_atomic(path, {"fingerprint": self.fingerprint, "config": self.config}, indent=2, sort_keys=True,
                          tag=f".{self.rank}")
        _fsync_dir(self.out_dir)

    # -- rows
    def is_done(self, problem_id: str, method: str, setting: dict) -> bool:
        """Whether a row with this key is already on disk (in any shard or the merged file)."""
        return row_key(problem_id, method, setting) in self.done

    def append(self, row: dict) -> bool:
        """Write one finished row to this process's shard (flushed and fsynced); False if its key is already done.

        Refuses a row that :func:`validate_row` refuses, or a closed store.
        """
        validate_row(row)
        key = row_key(row["problem_id"], row["method"], row["setting"])
        if key in self.done:
            return False
        if self._fh is None:
            raise TTScaleError("this RunStore is closed; open a new RunStore on the directory to append rows")
        self._fh.append(row)
        self.done.add(key)
        return True

    def merge(self) -> int:
        """Rank 0 only: write every row (merged file + all shards, de-duplicated) sorted into ``samples.jsonl``,
        then delete the shards. Returns the number of rows. Call it after every process finished appending and
        closed its store (``store.close(); accelerator.wait_for_everyone()``). Refuses other ranks.
        """
        if self.rank != 0:
            raise TTScaleError(f"merge() runs on rank 0 only (this is rank {self.rank}); wait for everyone, then merge on rank 0")
        self.close()
        rows = read_samples(self.out_dir)
        write_jsonl_atomic(os.path.join(self.out_dir, SAMPLES), rows, dumps_fn=canonical_json)
        _fsync_dir(self.out_dir)
        for p in shard_paths(self.out_dir):
            os.remove(p)
        _fsync_dir(self.out_dir)
        self.done = {row_key(r["problem_id"], r["method"], r["setting"]) for r in rows}
        return len(rows)

    def close(self) -> None:
        """Close this process's shard file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
