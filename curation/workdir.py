"""The run directory of ``ttscale curate``: one folder per stage with the questions it kept and the ones it dropped,
and a state file that says which stages are done, with which settings, and what they counted.

    OUT/stages/state.json                per stage: settings hash, counts, done (the run's progress)
    OUT/stages/NN-<stage>/kept.jsonl     the questions the stage kept (the next stage's input), in order
    OUT/stages/NN-<stage>/drops.jsonl    one Drop per removed question (stage, reason, detail)
    OUT/cache/                           per-question caches of the expensive stages (traces, grading, classification)

A stage runs as ``fn(questions, drop) -> Iterable[Question]``: it consumes the previous stage's kept questions,
yields the ones it keeps and calls ``drop(Drop(...))`` for every one it removes. Its files are written to temporary
names and renamed when it ends, so a killed stage leaves the previous state whole (its expensive work is in the
per-question caches, so running it again redoes nothing finished). A stage is skipped when it is done with the same
settings; changing a stage's settings redoes it and every stage after it. Every stage must account for each question:
``in == kept + dropped``, or the run stops with a sentence saying by how much.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from curation.cache import settings_hash
from curation.schema import STAGES, Drop, Question
from engine.errors import TTScaleError
from engine.jsonl import JsonlWriter, iter_jsonl, write_json_atomic

STATE = "state.json"


@dataclass
class StageCounts:
    """What one stage did: questions in, kept, dropped by reason, and its wall time."""

    stage: str
    inputs: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    wall_s: float = 0.0

    def to_json(self) -> dict:
        """The manifest's record of the stage."""
        return {"in": self.inputs, "kept": self.kept, "dropped": sum(self.dropped.values()),
                "drops_by_reason": dict(sorted(self.dropped.items())), "wall_s": round(self.wall_s, 2)}


class WorkDir:
    """One curation run's directory (see the module docstring). Refuses an ``out_dir`` that is a file."""

    def __init__(self, out_dir: str):
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise TTScaleError(f"--out {out_dir}: is a file, not a directory; give a directory (it is created if missing)")
        self.out_dir = out_dir
        os.makedirs(os.path.join(out_dir, "stages"), exist_ok=True)
        self.manifest = self._read_manifest()

    # ---- paths -----------------------------------------------------------------------------------------------
    def stage_dir(self, stage: str) -> str:
        """``OUT/stages/NN-<stage>``; refuses an unknown stage."""
        if stage not in STAGES:
            raise TTScaleError(f"unknown curation stage {stage!r}; the stages are {', '.join(STAGES)}")
        return os.path.join(self.out_dir, "stages", f"{STAGES.index(stage) + 1:02d}-{stage}")

    def kept_path(self, stage: str) -> str:
        return os.path.join(self.stage_dir(stage), "kept.jsonl")

    def drops_path(self, stage: str) -> str:
        return os.path.join(self.stage_dir(stage), "drops.jsonl")

    def cache_dir(self) -> str:
        return os.path.join(self.out_dir, "cache")

    # ---- manifest ----------------------------------------------------------------------------------------------
    def _read_manifest(self) -> dict:
        path = os.path.join(self.out_dir, "stages", STATE)
        if not os.path.exists(path):
            return {"stages": {}}
        try:
            with open(path, encoding="utf-8") as fh:
                manifest = json.load(fh)
        except (OSError, ValueError) as exc:
            raise TTScaleError(f"{path} cannot be read ({exc}); delete it to start the run afresh") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
            raise TTScaleError(f"{path} is not a curation manifest; delete it to start the run afresh")
        return manifest

    def reload(self) -> None:
        """Read the state file again (another process may have run a stage meanwhile)."""
        self.manifest = self._read_manifest()

    def write_manifest(self, **fields) -> None:
        """Merge ``fields`` (config, versions, seeds, ...) into the manifest and write it atomically."""
        self.manifest.update(fields)
        write_json_atomic(os.path.join(self.out_dir, "stages", STATE), self.manifest, indent=2, sort_keys=True)

    def is_done(self, stage: str, settings: dict) -> bool:
        """Whether ``stage`` finished with exactly these settings (and its kept file is there)."""
        rec = self.manifest["stages"].get(stage) or {}
        return bool(rec.get("done")) and rec.get("settings") == settings_hash(settings) and os.path.exists(self.kept_path(stage))

    def counts(self, stage: str) -> dict | None:
        """The manifest's counts of a finished stage, or None."""
        rec = self.manifest["stages"].get(stage) or {}
        return rec.get("counts") if rec.get("done") else None

    # ---- reading and running -----------------------------------------------------------------------------------
    def questions(self, stage: str) -> Iterator[Question]:
        """The questions ``stage`` kept, streamed. Refuses a stage that has not run in this directory."""
        path = self.kept_path(stage)
        if not os.path.exists(path):
            raise TTScaleError(f"{self.out_dir}: the {stage} stage has not run here yet; run `ttscale curate {stage}` "
                               "(or the whole pipeline) first")
        for row in iter_jsonl(path, what=f"{stage} output"):
            yield Question.from_json(row)

    def drops(self, stage: str) -> Iterator[Drop]:
        """The drops ``stage`` recorded, streamed (none when it has not run)."""
        path = self.drops_path(stage)
        if os.path.exists(path):
            for row in iter_jsonl(path, what=f"{stage} drops"):
                yield Drop(**row)

    def run_stage(self, stage: str, settings: dict, fn: Callable[[Iterable[Question], Callable[[Drop], None]], Iterable[Question]],
                  questions: Iterable[Question]) -> StageCounts:
        """Run ``fn`` over ``questions`` and record what it kept and dropped (see the module docstring); returns its
        counts. Later stages are marked not done. Refuses a stage that loses or invents questions."""
        folder = self.stage_dir(stage)
        os.makedirs(folder, exist_ok=True)
        for later in STAGES[STAGES.index(stage):]:
            (self.manifest["stages"].get(later) or {})["done"] = False
        counts = StageCounts(stage)
        t0 = time.perf_counter()
        kept_tmp, drops_tmp = self.kept_path(stage) + ".tmp", self.drops_path(stage) + ".tmp"

        def counted(items: Iterable[Question]) -> Iterator[Question]:
            for q in items:
                counts.inputs += 1
                yield q

        try:
            self._write_stage(stage, fn, counted(questions), counts, kept_tmp, drops_tmp)
        except BaseException:
            for tmp in (kept_tmp, drops_tmp):
                if os.path.exists(tmp):
                    os.remove(tmp)
            raise
        os.replace(kept_tmp, self.kept_path(stage))
        os.replace(drops_tmp, self.drops_path(stage))
        counts.wall_s = time.perf_counter() - t0
        self.manifest["stages"][stage] = {"done": True, "settings": settings_hash(settings), "counts": counts.to_json()}
        self.write_manifest()
        return counts

    @staticmethod
    def _write_stage(stage, fn, questions, counts: StageCounts, kept_tmp: str, drops_tmp: str) -> None:
        """Stream ``fn`` over ``questions`` into the temporary kept and drops files; check the accounting."""
        with JsonlWriter(kept_tmp, mode="w") as kept, JsonlWriter(drops_tmp, mode="w") as dropped:
            def drop(d: Drop) -> None:
                if d.stage != stage:
                    d = Drop(d.id, stage, d.reason, d.detail, d.source)
                counts.dropped[d.reason] += 1
                dropped.append(d.to_json())

            for q in fn(questions, drop):
                counts.kept += 1
                kept.append(q.to_json())
        n_dropped = sum(counts.dropped.values())
        if stage != "pool" and counts.inputs != counts.kept + n_dropped:
            raise TTScaleError(f"the {stage} stage took {counts.inputs} questions but kept {counts.kept} and dropped "
                               f"{n_dropped}: {counts.inputs - counts.kept - n_dropped:+d} unaccounted for (a bug in the stage)")
        if stage == "pool":
            counts.inputs = counts.kept + n_dropped  # the pool reads its sources: what it produced is its input
