"""The run store: append + fsync, resume without loss or duplicates (real kill, torn line), config refusal, shards."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO

from benchmarks.eval.store import RunStore, canonical_json, new_row, read_config, read_samples, row_key, shard, validate_row
from engine.errors import TTScaleError

CONFIG = {"model": "smollm2-135m", "dataset": "synthetic", "limit": 7, "sampling": {"temperature": 0.0}}


def items():
    """7 problems × 2 budget settings: the work list of a small sequential run."""
    return [(f"p{i}", {"max_thinking_tokens": b}) for i in range(7) for b in (64, 256)]


def row_for(pid, setting):
    b = setting["max_thinking_tokens"]
    return new_row(pid, "budget", setting, compute=b // 2, correct=(int(pid[1:]) + b) % 3 == 0,
                   prompt=f"Q{pid}", generation="x" * 10, extracted="1", gold="1", thinking_tokens=b // 2,
                   answer_tokens=3, wall_s=0.0)


def lines(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def test_append_skip_and_merge(tmp_path):
    out = str(tmp_path / "run")
    with RunStore(out, CONFIG) as store:
        for pid, s in reversed(items()[:3]):
            assert store.append(row_for(pid, s))
        assert not store.append(row_for(*items()[0]))  # same key again: nothing written
        assert store.is_done("p0", "budget", {"max_thinking_tokens": 64})
    assert len(lines(os.path.join(out, "samples.rank0.jsonl"))) == 3
    store = RunStore(out, CONFIG)
    assert store.done == {row_key(p, "budget", s) for p, s in items()[:3]}
    assert store.merge() == 3
    assert not os.path.exists(os.path.join(out, "samples.rank0.jsonl"))
    merged = [json.loads(line) for line in lines(os.path.join(out, "samples.jsonl"))]
    assert [(r["problem_id"], r["setting"]["max_thinking_tokens"]) for r in merged] == [("p0", 64), ("p0", 256), ("p1", 64)]
    assert read_config(out) == CONFIG
    with open(os.path.join(out, "config.json")) as fh:
        assert len(json.load(fh)["fingerprint"]) == 64


def test_torn_last_line_is_ignored_then_cut_off(tmp_path):
    out = str(tmp_path / "run")
    with RunStore(out, CONFIG) as store:
        for pid, s in items()[:2]:
            store.append(row_for(pid, s))
    path = os.path.join(out, "samples.rank0.jsonl")
    whole = canonical_json(row_for(*items()[2])) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(whole[: len(whole) // 2])  # a kill in the middle of a write
    assert len(read_samples(out)) == 2  # readers skip the torn row
    with RunStore(out, CONFIG) as store:
        assert not store.is_done(*items()[2][:1], "budget", items()[2][1])
        assert store.append(row_for(*items()[2]))
    rows = [json.loads(line) for line in lines(path)]  # every line parses: the fragment was cut, not glued to
    assert [r["problem_id"] for r in rows] == ["p0", "p0", "p1"]


def test_corrupt_middle_line_is_refused_with_its_line_number(tmp_path):
    out = str(tmp_path / "run")
    with RunStore(out, CONFIG) as store:
        store.append(row_for(*items()[0]))
    with open(os.path.join(out, "samples.rank0.jsonl"), "a") as fh:
        fh.write("{oops\n" + canonical_json(row_for(*items()[1])) + "\n")
    with pytest.raises(TTScaleError, match="line 2: not valid JSON"):
        read_samples(out)


def test_changed_config_is_refused(tmp_path):
    out = str(tmp_path / "run")
    RunStore(out, CONFIG).close()
    RunStore(out, json.loads(json.dumps(CONFIG))).close()  # the same config resumes
    changed = dict(CONFIG, sampling={"temperature": 0.8})
    with pytest.raises(TTScaleError, match=r"another configuration \(sampling.temperature: 0.0 -> 0.8\).*new output directory"):
        RunStore(out, changed)


def test_rows_are_validated():
    with pytest.raises(TTScaleError, match="lacks the field 'correct'"):
        validate_row({"problem_id": "1", "method": "budget", "setting": {}, "scaling": "sequential", "compute": 3})
    with pytest.raises(TTScaleError, match="pass scaling="):
        new_row("1", "my-method", {}, 1, True)
    assert new_row("1", "my-method", {}, 1, True, scaling="parallel")["scaling"] == "parallel"
    assert new_row("1", "dvts", {"n": 4}, 4, False)["scaling"] == "parallel"
    with pytest.raises(TTScaleError, match="'compute'"):
        new_row("1", "budget", {}, float("nan"), True)


def test_shard_is_a_disjoint_deterministic_cover():
    xs = list(range(10))
    parts = [shard(xs, r, 3) for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(sum(parts, [])) == xs
    with pytest.raises(TTScaleError, match="rank=3"):
        shard(xs, 3, 3)
    with pytest.raises(TTScaleError, match="world=0"):
        shard(xs, 0, 0)


def test_two_shards_merge_equals_one_process(tmp_path):
    one = str(tmp_path / "one")
    with RunStore(one, CONFIG) as store:
        for pid, s in items():
            store.append(row_for(pid, s))
        store.merge()
    two = str(tmp_path / "two")
    r0, r1 = RunStore(two, CONFIG, rank=0, world=2), RunStore(two, CONFIG, rank=1, world=2)
    for store in (r1, r0):  # finishing order differs from one process
        for pid, s in reversed(shard(items(), store.rank, 2)):
            store.append(row_for(pid, s))
    r1.close()
    # a restarted rank 0 sees rank 1's rows as done
    assert RunStore(two, CONFIG, rank=0, world=2).done == {row_key(p, "budget", s) for p, s in items()}
    assert r0.merge() == len(items())
    with open(os.path.join(one, "samples.jsonl"), "rb") as a, open(os.path.join(two, "samples.jsonl"), "rb") as b:
        assert a.read() == b.read()
    with pytest.raises(TTScaleError, match="rank 0 only"):
        r1.merge()


def test_resume_with_a_different_number_of_processes(tmp_path):
    out = str(tmp_path / "run")
    for rank in range(3):  # a 3-process run that finished only its first item on each rank
        with RunStore(out, CONFIG, rank=rank, world=3) as store:
            store.append(row_for(*shard(items(), rank, 3)[0]))
    with RunStore(out, CONFIG) as store:  # resumed as one process
        todo = [it for it in items() if not store.is_done(it[0], "budget", it[1])]
        assert len(todo) == len(items()) - 3
        for pid, s in todo:
            store.append(row_for(pid, s))
        assert store.merge() == len(items())
    assert [os.path.basename(p) for p in sorted(os.listdir(out))] == ["config.json", "samples.jsonl"]


WORKER = textwrap.dedent("""
    import sys, time, types
    sys.path.insert(0, {repo!r})
    # A bare 'engine' package: the store needs engine.errors only, and engine/__init__ would import torch (seconds).
    sys.modules["engine"] = types.ModuleType("engine")
    sys.modules["engine"].__path__ = [{repo!r} + "/engine"]
    from benchmarks.eval.store import RunStore, new_row
    assert "torch" not in sys.modules
    store = RunStore({out!r}, {config!r})
    for i in range(40):
        setting = {{"n": 4}}
        if store.is_done(f"p{{i}}", "majority", setting):
            print("skip", i, flush=True)
            continue
        time.sleep({delay})
        store.append(new_row(f"p{{i}}", "majority", setting, 4, i % 2 == 0, generation=str(i) * 200000))
        print(i, flush=True)
    store.merge()
""")


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    out = str(tmp_path / "run")

    def worker(delay):
        code = WORKER.format(repo=REPO, out=out, config=CONFIG, delay=delay)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)

    proc = worker(0.05)
    seen = 0
    deadline = time.time() + 60
    while seen < 5 and time.time() < deadline:  # let it finish a few rows, then kill it without warning
        if proc.stdout.readline():
            seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shard_path = os.path.join(out, "samples.rank0.jsonl")
    finished = len(read_samples(out))
    assert 5 <= finished < 40
    with open(shard_path, "a") as fh:  # make sure a torn row is present whatever the kill hit
        fh.write('{"problem_id": "p39", "meth')
    proc = worker(0.0)
    resumed, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    skipped = [line for line in resumed.splitlines() if line.startswith("skip")]
    assert skipped == [f"skip {i}" for i in range(finished)]  # the finished rows are skipped, the torn one is redone
    assert len(resumed.splitlines()) == 40
    rows = read_samples(out)
    assert [r["problem_id"] for r in rows] == [f"p{i}" for i in range(40)]
    assert all(r["generation"] == str(int(r["problem_id"][1:])) * 200000 for r in rows)
    assert len(lines(os.path.join(out, "samples.jsonl"))) == 40


def test_binary_run_file_is_refused_as_not_utf8(tmp_path):
    out = str(tmp_path / "run")
    with RunStore(out, CONFIG) as store:
        store.append(row_for(*items()[0]))
    with open(os.path.join(out, "samples.rank0.jsonl"), "ab") as fh:
        fh.write(b"\xff\xfe\x00binary\n")
    with pytest.raises(TTScaleError, match="line 2: not UTF-8 text"):
        read_samples(out)
