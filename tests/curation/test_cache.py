"""The stage cache: one row per question, nothing written twice, torn lines survived, rank files merged; the unit
runner redoes nothing finished."""

import json
import os

import pytest

from benchmarks.eval.runner import Processes
from curation.cache import StageCache, plan_units, run_units, settings_hash, unit_seed
from engine.errors import TTScaleError


class Q:
    def __init__(self, i):
        self.id = f"q{i}"


def test_put_get_and_reopen(tmp_path):
    c = StageCache(str(tmp_path), "traces", {"model": "m", "k": 2})
    assert c.done == 0 and "a" not in c
    assert c.put("a", {"x": 1}) is True
    assert c.put("a", {"x": 2}) is False  # never written twice
    c.close()
    again = StageCache(str(tmp_path), "traces", {"k": 2, "model": "m"})  # key order does not matter
    assert again.path == c.path and again.get("a") == {"x": 1} and "a" in again and again.done == 1
    assert len(open(c.path).read().splitlines()) == 1
    assert c.path.endswith(f"cache/traces-{settings_hash({'model': 'm', 'k': 2})}.jsonl")
    with open(c.path.replace(".jsonl", ".json")) as fh:
        assert json.load(fh)["settings"] == {"model": "m", "k": 2}
    other = StageCache(str(tmp_path), "traces", {"model": "m", "k": 3})
    assert other.path != c.path and other.done == 0
    with pytest.raises(TTScaleError, match="closed"):
        c.put("b", {})


def test_torn_last_line_is_skipped_then_cut(tmp_path):
    c = StageCache(str(tmp_path), "grading", {"model": "m"})
    c.put("a", {"x": 1})
    c.close()
    with open(c.path, "a") as fh:
        fh.write('{"id": "b", "resu')  # a kill mid-write
    c2 = StageCache(str(tmp_path), "grading", {"model": "m"})
    assert c2.ids() == {"a"}
    c2.put("b", {"x": 2})
    c2.close()
    assert [json.loads(line)["id"] for line in open(c.path)] == ["a", "b"]


def test_refusals(tmp_path):
    with pytest.raises(TTScaleError, match="lower-case identifier"):
        StageCache(str(tmp_path), "Bad Stage", {})
    with pytest.raises(TTScaleError, match="cannot be stored as JSON"):
        StageCache(str(tmp_path), "s", {"x": object()})
    c = StageCache(str(tmp_path), "s", {})
    with pytest.raises(TTScaleError, match="result of question a cannot be stored as JSON"):
        c.put("a", {"x": float("nan")})
    assert c.done == 0 and not os.path.exists(c.path)
    with pytest.raises(TTScaleError, match="must be a dict"):
        c.put("a", [1])
    with pytest.raises(TTScaleError, match="rank"):
        StageCache(str(tmp_path), "s", {}, rank=2, world=2)
    with open(c.prefix + ".json", "w") as fh:
        json.dump({"stage": "s", "settings": {"edited": True}}, fh)
    with pytest.raises(TTScaleError, match="was edited"):
        StageCache(str(tmp_path), "s", {})
    bad = StageCache(str(tmp_path), "t", {})
    with open(bad.path, "w") as fh:
        fh.write('{"id": 3, "result": {}}\n')
    with pytest.raises(TTScaleError, match="row 1"):
        bad.reload()


def test_rank_files_are_read_by_all_and_merged_by_rank_zero(tmp_path):
    r0 = StageCache(str(tmp_path), "s", {"m": 1}, rank=0, world=2)
    r1 = StageCache(str(tmp_path), "s", {"m": 1}, rank=1, world=2)
    r0.put("a", {"v": 0})
    r1.put("b", {"v": 1})
    r0.reload()
    assert r0.ids() == {"a", "b"} and r1.reload() == 2
    with pytest.raises(TTScaleError, match="rank 0 only"):
        r1.merge()
    r1.close()
    assert r0.merge() == 2
    assert r0.paths() == [r0.prefix + ".jsonl"]
    one = StageCache(str(tmp_path), "s", {"m": 1})  # resumed by one process
    assert one.get("b") == {"v": 1}


def test_units_and_seeds():
    assert [len(u) for u in plan_units(range(7), 3)] == [3, 3, 1]
    assert unit_seed(0, ["a", "b"]) == unit_seed(0, ["a", "b"]) != unit_seed(1, ["a", "b"])
    with pytest.raises(TTScaleError, match="at least one"):
        plan_units([1], 0)


def test_run_units_resumes_without_redoing(tmp_path):
    qs = [Q(i) for i in range(7)]
    calls = []

    def make_worker(fail_after=None):
        def work(pending, unit):
            if fail_after is not None and len(calls) >= fail_after:
                raise KeyboardInterrupt  # a kill between units
            calls.append([q.id for q in pending])
            return [{"v": q.id} for q in pending]
        return work

    cache = StageCache(str(tmp_path), "s", {})
    with pytest.raises(KeyboardInterrupt):
        run_units(cache, qs, 2, lambda: make_worker(fail_after=2), Processes(), progress=False)
    assert StageCache(str(tmp_path), "s", {}).done == 4
    before = len(calls)
    cache = StageCache(str(tmp_path), "s", {})
    assert run_units(cache, qs, 2, make_worker, Processes(), progress=False) == 3
    assert calls[before:] == [["q4", "q5"], ["q6"]]  # only the unfinished units
    assert cache.done == 7 and cache.get("q6") == {"v": "q6"}
    half = StageCache(str(tmp_path / "half"), "s", {})
    half.put("q3", {"v": "q3"})  # a unit whose first row was written when the run was killed
    assert run_units(half, qs, 2, make_worker, Processes(), progress=False) == 6
    assert ["q2"] in calls and all("q3" not in c for c in calls[before + 2:])
    built = []
    run_units(StageCache(str(tmp_path), "s", {}), qs, 2, lambda: built.append(1), Processes(), progress=False)
    assert built == []  # nothing left: the worker (the model) is never built


def test_run_units_two_ranks_share_the_work(tmp_path):
    qs = [Q(i) for i in range(5)]
    seen = []
    caches = [StageCache(str(tmp_path), "s", {}, rank=rank, world=2) for rank in (0, 1)]  # both open before work
    for rank, c in enumerate(caches):  # barriers are no-ops here: the ranks run one after the other
        run_units(c, qs, 1, lambda: (lambda p, u: seen.append(p[0].id) or [{"r": 0}]), Processes(rank=rank, world=2), progress=False)
    assert sorted(seen) == sorted(q.id for q in qs) and len(seen) == 5
    assert StageCache(str(tmp_path), "s", {}).done == 5
