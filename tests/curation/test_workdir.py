"""The curation run directory: stage files, counts that add up, skipping a done stage, redoing after a change."""

import json
import os

import pytest

from curation.cache import settings_hash
from curation.schema import Drop, Question
from curation.workdir import STAGES, WorkDir
from engine.errors import TTScaleError


def _pool(n):
    return [Question(f"What is {i} + {i}?", answer=str(2 * i), source="toy") for i in range(n)]


def _keep_even(questions, drop):
    for q in questions:
        if int(q.answer) % 4 == 0:
            yield q
        else:
            drop(Drop(q.id, "wrong-stage-name", "odd_half", f"answer {q.answer}", q.source))


def test_a_stage_writes_kept_and_drops_and_counts_that_add_up(tmp_path):
    work = WorkDir(str(tmp_path / "run"))
    counts = work.run_stage("quality", {"rule": "even"}, _keep_even, _pool(10))
    assert (counts.inputs, counts.kept, dict(counts.dropped)) == (10, 5, {"odd_half": 5})
    assert [q.answer for q in work.questions("quality")] == ["0", "4", "8", "12", "16"]
    drops = list(work.drops("quality"))
    assert len(drops) == 5 and {d.stage for d in drops} == {"quality"}  # a drop is filed under the stage that ran
    with open(tmp_path / "run" / "stages" / "state.json", encoding="utf-8") as fh:
        rec = json.load(fh)["stages"]["quality"]
    assert rec["done"] and rec["counts"]["in"] == rec["counts"]["kept"] + rec["counts"]["dropped"] == 10
    assert rec["settings"] == settings_hash({"rule": "even"})
    assert work.stage_dir("quality").endswith(f"{STAGES.index('quality') + 1:02d}-quality")
    assert not [f for f in os.listdir(work.stage_dir("quality")) if f.endswith(".tmp")]


def test_done_stages_are_recognised_and_a_rerun_invalidates_the_later_ones(tmp_path):
    work = WorkDir(str(tmp_path / "run"))
    work.run_stage("quality", {"a": 1}, _keep_even, _pool(4))
    work.run_stage("difficulty", {"b": 2}, lambda qs, drop: iter(qs), work.questions("quality"))
    again = WorkDir(str(tmp_path / "run"))
    assert again.is_done("quality", {"a": 1}) and again.is_done("difficulty", {"b": 2})
    assert not again.is_done("quality", {"a": 2})
    again.run_stage("quality", {"a": 2}, _keep_even, _pool(4))
    assert not again.is_done("difficulty", {"b": 2})  # its input changed


def test_a_stage_that_loses_questions_is_refused(tmp_path):
    work = WorkDir(str(tmp_path / "run"))

    def lossy(questions, drop):
        for i, q in enumerate(questions):
            if i % 2 == 0:
                yield q

    with pytest.raises(TTScaleError, match=r"took 6 questions but kept 3 and dropped 0: \+3 unaccounted for"):
        work.run_stage("quality", {}, lossy, _pool(6))
    assert os.listdir(work.stage_dir("quality")) == []  # nothing half-written is left behind


def test_refusals(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TTScaleError, match="is a file, not a directory"):
        WorkDir(str(tmp_path / "file"))
    work = WorkDir(str(tmp_path / "run"))
    with pytest.raises(TTScaleError, match="the traces stage has not run here yet"):
        next(work.questions("traces"))
    with pytest.raises(TTScaleError, match="unknown curation stage 'bogus'"):
        work.stage_dir("bogus")
