"""The pool: every kind of source read into Questions, refused in one sentence before any row, memory bounded."""

import json
import time
import tracemalloc

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.data.synthetic import load_synthetic
from curation.pool import KNOWN, PoolConfig, SourceSpec, iter_pool
from engine.errors import ConfigError, TTScaleError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


ROWS = [{"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "answer": "2", "level": 1},
        {"problem": "What is $2+3$?", "solution": "So $\\boxed{5}$.", "answer": "5", "level": 2}]


def test_jsonl_with_and_without_a_mapping(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", ROWS)
    qs = list(iter_pool([path]))
    assert [q.question for q in qs] == ["What is $1+1$?", "What is $2+3$?"]
    assert qs[1].answer == "5" and qs[1].source == path and qs[1].metadata["pool"] == {"source": path, "row": 1}
    mapped = list(iter_pool([f"{path} fields=question=problem,solution=solution label=mine limit=1"]))
    assert len(mapped) == 1 and mapped[0].answer == "2" and mapped[0].source == "mine"  # answer from the solution's box


def test_parquet_reads_only_mapped_columns_by_row_group(tmp_path):
    rows = [{"q": f"Question number {i}?", "solution": f"\\boxed{{{i}}}", "junk": "x" * 10} for i in range(2500)]
    path = str(tmp_path / "p.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=700)
    qs = list(iter_pool([f"{path} fields=question=q,solution=solution"]))
    assert len(qs) == 2500 and qs[1234].answer == "1234" and qs[-1].question == "Question number 2499?"
    with pytest.raises(TTScaleError, match="its schema has no field 'problem'"):
        iter_pool([f"{path} fields=question=problem"])


def test_synthetic_n_questions_with_a_seed():
    qs = list(iter_pool(["synthetic:arith:2 limit=7 seed=3"]))
    assert [q.question for q in qs] == [p.question for p in load_synthetic("synthetic:arith:2", limit=7, seed=3)]
    assert qs[0].answer and qs[0].solution.endswith(f"Answer: {qs[0].answer}") and qs[0].source == "synthetic:arith:2"
    other = [q.question for q in iter_pool([SourceSpec("synthetic:arith:2", limit=7, seed=4)])]
    assert other != [q.question for q in qs]
    assert len(list(iter_pool(PoolConfig(sources=("synthetic",), seed=1)))) == 100
    with pytest.raises(TTScaleError, match="pool source synthetic:count:9: difficulty 9 is out of range"):
        iter_pool(["synthetic:count:9"])


class _FakeHub:
    """Stands in for ``datasets.load_dataset``: a streamed dataset built from rows, the calls recorded."""

    def __init__(self, rows, features=True):
        self.rows, self.features, self.calls = rows, features, []

    def __call__(self, name, config=None, split=None, streaming=False):
        self.calls.append((name, config, split, streaming))
        ds = datasets.Dataset.from_list(self.rows).to_iterable_dataset()
        if not self.features:
            ds = ds.map(lambda r: r)  # a map drops the declared features, as a streamed JSON dataset has none
            assert ds.features is None
        return ds


def test_known_hub_datasets_stream_with_their_mappings(monkeypatch):
    numina = _FakeHub([{"source": "olympiads", "problem": "Find $x$ if $2x=6$.", "messages": [],
                        "solution": "We get $x=3$, and $\\boxed{1}$ was wrong: $\\boxed{3}$"}])
    monkeypatch.setattr(datasets, "load_dataset", numina)
    (q,) = iter_pool(["AI-MO/NuminaMath-CoT"])
    assert numina.calls == [("AI-MO/NuminaMath-CoT", None, "train", True)]
    assert q.answer == "3" and q.source == "AI-MO/NuminaMath-CoT/olympiads" and "traces" not in q.metadata

    s1k = _FakeHub([{"solution": "128", "question": "How many ...?", "cot_type": "math", "source_type": "qq8933/AIME_1983_2024",
                     "metadata": "{}", "cot": None, "thinking_trajectories": ["Let me think. 128."],
                     "attempt": "The answer is $\\boxed{128}$."}])
    monkeypatch.setattr(datasets, "load_dataset", s1k)
    (q,) = iter_pool(["simplescaling/s1K"])
    assert q.answer == "128" and q.source == "simplescaling/s1K/qq8933/AIME_1983_2024"
    assert q.metadata["pool"]["cot_type"] == "math"
    (sample,) = q.metadata["traces"]["samples"]
    assert sample["thinking"] == "Let me think. 128." and sample["answer"] == "128" and sample["model"] == KNOWN["simplescaling/s1K"].trace_model

    (q,) = iter_pool(["simplescaling/s1K fields=answer=cot_type"])  # an override of one field of a known mapping
    assert q.answer == "math" and q.question == "How many ...?"

    limo = _FakeHub([{"question": "Q?", "solution": "long", "answer": "42"}], features=False)
    monkeypatch.setattr(datasets, "load_dataset", limo)
    (q,) = iter_pool(["GAIR/LIMO"])
    assert q.answer == "42" and q.source == "GAIR/LIMO"


def test_unknown_hub_ids_need_a_mapping_and_every_mapped_field(monkeypatch):
    hub = _FakeHub([{"prompt": "Q1?", "ref": "A1"}])
    monkeypatch.setattr(datasets, "load_dataset", hub)
    with pytest.raises(TTScaleError, match="does not know .*give its field mapping"):
        iter_pool(["someone/data"])
    assert hub.calls == []  # refused before any download
    (q,) = iter_pool(["someone/data fields=question=prompt,answer=ref split=test config=c"])
    assert q.answer == "A1" and hub.calls[-1] == ("someone/data", "c", "test", True)
    with pytest.raises(TTScaleError, match="the dataset has no field 'solution' .*its fields are prompt, ref"):
        iter_pool(["someone/data fields=question=prompt,solution=solution"])
    monkeypatch.setattr(datasets, "load_dataset", _FakeHub([{"prompt": "Q1?"}], features=False))
    with pytest.raises(TTScaleError, match="its first row has no field 'ref'"):
        iter_pool(["someone/data fields=question=prompt,answer=ref"])


def test_a_hub_failure_is_one_sentence(monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hub\nlong traceback text")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(TTScaleError, match=r"^pool source GAIR/LIMO: the hub dataset \(split train\) could not be opened "
                                           r"\(Couldn't reach the Hub\); check"):
        iter_pool(["GAIR/LIMO"])


@pytest.mark.parametrize("source, message", [
    ("missing/file.jsonl", "no such file"),
    ("./nothing-here", "not a hub id"),
    ("{path} fields=question", "has no '='"),
    ("{path} fields=answer=answer", "has no question field"),
    ("{path} fields=question=problem,why=level", "unknown target 'why'"),
    ("{path} fields=question=nope", "its first row has no field 'nope'"),
    ("{path} limit=ten", "limit='ten' must be an integer"),
    ("{path} colour=red", "'colour=red' is not one of"),
    ("{txt}", "only .jsonl and .parquet"),
])
def test_bad_sources_are_refused_in_one_sentence(tmp_path, source, message):
    path = _jsonl(tmp_path / "p.jsonl", ROWS)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(TTScaleError, match=message) as err:
        iter_pool([source.format(path=path, txt=tmp_path / "notes.txt")])
    assert "\n" not in str(err.value)


def test_every_source_is_checked_before_any_row(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", ROWS)
    with pytest.raises(TTScaleError, match="no such file"):
        iter_pool([good, str(tmp_path / "later-missing.jsonl")])
    with pytest.raises(ConfigError, match="^limit of pool source"):
        SourceSpec(good, limit=0)
    with pytest.raises(ConfigError, match="^sources is empty"):
        PoolConfig()
    assert [s.limit for s in PoolConfig(sources=(good, f"{good} limit=1"), limit=5).specs()] == [5, 1]


def test_empty_questions_are_dropped_with_a_reason_or_refused(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [ROWS[0], {"problem": "  ", "answer": "1"}, ROWS[1]])
    drops = []
    assert len(list(iter_pool([path], on_drop=drops.append))) == 2
    assert [(d.stage, d.reason) for d in drops] == [("pool", "empty_question")] and "row 2" in drops[0].detail
    with pytest.raises(TTScaleError, match="row 2: the question field 'problem' is empty"):
        list(iter_pool([path]))
    partial = _jsonl(tmp_path / "q.jsonl", [ROWS[0], {"answer": "1"}])
    with pytest.raises(TTScaleError, match="row 2 has no field 'problem'"):
        list(iter_pool([partial]))


def test_streaming_a_large_jsonl_keeps_memory_bounded(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(200_000):
            fh.write(f'{{"question": "What is {i} plus {i % 97}?", "answer": "{i + i % 97}"}}\n')
    start = time.perf_counter()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        n = sum(1 for _ in iter_pool([str(path)]))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert n == 200_000
    assert peak < 1_000_000, f"peak memory grew by {peak} bytes while streaming"  # all rows held would be ~100 MB
    assert time.perf_counter() - start < 30
