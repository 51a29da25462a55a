"""The outputs: an s1K-shaped dataset that datasets.load_from_disk reads, a Parquet copy, a report whose counts add
up stage by stage (and a writer that refuses counts that do not), PNG figures, a Markdown summary and a manifest."""

import json
import os

import pytest

from curation.output import S1K_COLUMNS, StageCount, read_drops, s1k_row, stage_table, write_outputs
from curation.schema import Drop, Question
from curation.select import SelectionConfig, select
from engine.errors import TTScaleError

PNG = b"\x89PNG\r\n\x1a\n"


def traced(i, domain="11", tokens=None):
    tokens = tokens if tokens is not None else 100 + 10 * i
    return Question(f"Question {i}: what is {i} squared?", solution=f"{i * i}", answer=str(i * i), source="synthetic/Algebra",
                    metadata={"domain": {"code": domain, "name": "", "method": "subject", "detail": ""},
                              "traces": [{"thinking": f"think {i}", "attempt": f"Answer: {i * i}", "thinking_tokens": tokens,
                                          "finish_reason": "stop"}],
                              "cot_type": "math", "level": 3})


def run(tmp_path):
    """A miniature pipeline: 12 questions in, quality drops 2, selection keeps 4 of 10."""
    pool = [traced(i, "11" if i % 2 else "51") for i in range(12)]
    drops = [Drop(q.id, "quality", "figure", "[asy]", q.source) for q in pool[:2]]
    survivors = pool[2:]
    chosen = select(survivors, SelectionConfig(k=4, seed=1), record=drops.append)
    counts = [StageCount("pool", 12, 12), StageCount("quality", 12, 10), StageCount("selection", 10, 4)]
    report = write_outputs(str(tmp_path), chosen, counts, drops, config={"selection": SelectionConfig(k=4, seed=1).to_dict()},
                           seeds={"selection": 1}, candidates=survivors)
    return chosen, report


def test_dataset_loads_with_s1k_columns(tmp_path):
    import datasets

    chosen, _ = run(tmp_path)
    ds = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert tuple(ds.column_names) == S1K_COLUMNS and len(ds) == 4
    assert str(ds.features["cot"].dtype) == "null"
    assert ds.features["thinking_trajectories"].feature.dtype == "string"
    row, q = ds[0], chosen[0]
    assert row["question"] == q.question and row["solution"] == q.solution and row["cot"] is None
    assert row["cot_type"] == "math" and row["source_type"] == "synthetic/Algebra"
    assert row["thinking_trajectories"] == [q.metadata["traces"][0]["thinking"]] and row["attempt"].startswith("Answer: ")
    meta = json.loads(row["metadata"])
    assert meta["id"] == q.id and meta["answer"] == q.answer and meta["level"] == 3
    assert meta["selection"]["order"] == 0 and meta["traces"] == [{"thinking_tokens": q.metadata["traces"][0]["thinking_tokens"],
                                                                    "finish_reason": "stop"}]
    parquet = datasets.Dataset.from_parquet(str(tmp_path / "s1k.parquet"))
    assert parquet.column_names == ds.column_names and parquet[0] == row


def test_report_adds_up_and_files_exist(tmp_path):
    chosen, report = run(tmp_path)
    assert [(s["stage"], s["in"], s["out"], s["dropped"]) for s in report["stages"]] == \
        [("pool", 12, 12, 0), ("quality", 12, 10, 2), ("selection", 10, 4, 6)]
    for s in report["stages"]:
        assert s["in"] == s["out"] + s["dropped"] == s["out"] + sum(s["reasons"].values())
    assert report["stages"][2]["reasons"] == {"not_selected": 6}
    assert sum(report["domains"]["selected"].values()) == 4 and sum(report["domains"]["candidates"].values()) == 10
    assert report["trace_lengths"]["selected"]["n"] == 4
    for name in ("domains.png", "trace_lengths.png"):
        with open(tmp_path / name, "rb") as fh:
            assert fh.read(8) == PNG
    assert json.loads((tmp_path / "report.json").read_text()) == report
    summary = (tmp_path / "summary.md").read_text()
    assert "| quality | 12 | 10 | 2 | figure 2 |" in summary and "| selection | 10 | 4 | 6 | not_selected 6 |" in summary
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seeds"] == {"selection": 1} and manifest["config"]["selection"]["k"] == 4
    assert manifest["versions"]["datasets"] and manifest["versions"]["python"]
    assert manifest["stages"][-1] == {"stage": "selection", "in": 10, "out": 4, "dropped": 6}
    assert manifest["outputs"]["rows"] == 4 and len(manifest["outputs"]["parquet_sha256"]) == 64


def test_counts_that_do_not_add_up_are_refused(tmp_path):
    d = [Drop("a", "quality", "figure"), Drop("b", "quality", "figure")]
    with pytest.raises(TTScaleError, match="stage 'quality' took 12 questions in but gave 9 out and recorded 2 drops"):
        stage_table([StageCount("quality", 12, 9)], d, 9)
    with pytest.raises(TTScaleError, match="stage 'selection' took 11 questions in but stage 'quality' before it gave 10"):
        stage_table([StageCount("quality", 12, 10), StageCount("selection", 11, 11)], d, 11)
    with pytest.raises(TTScaleError, match="drops name stage 'quality', which has no count"):
        stage_table([StageCount("pool", 5, 5)], d, 5)
    with pytest.raises(TTScaleError, match="gave 10 questions out but 3 rows are written"):
        stage_table([StageCount("quality", 12, 10)], d, 3)
    with pytest.raises(TTScaleError, match="listed twice"):
        stage_table([StageCount("pool", 1, 1), StageCount("pool", 1, 1)], [], 1)
    with pytest.raises(TTScaleError, match="at least one stage"):
        stage_table([], [], 0)
    # the writer checks before it writes anything
    with pytest.raises(TTScaleError, match="every removed question needs a Drop"):
        write_outputs(str(tmp_path / "out"), [traced(1)], [StageCount("selection", 3, 1)], [], config={}, seeds={})
    assert not (tmp_path / "out").exists()


def test_rows_need_traces_and_drops_files_round_trip(tmp_path):
    with pytest.raises(TTScaleError, match="has no trace thinking text"):
        s1k_row(Question("no trace"))
    row = s1k_row(Question("x", metadata={"traces": {"thinking": "t", "answer": "4"}}))
    assert list(row) == list(S1K_COLUMNS) and row["attempt"] == "4" and row["cot_type"] == "math"
    path = tmp_path / "drops.jsonl"
    drops = [Drop("a", "quality", "figure", "[asy]", "math"), Drop("b", "selection", "not_selected")]
    path.write_text("".join(json.dumps(d.to_json()) + "\n" for d in drops))
    assert read_drops(str(path)) == drops
    path.write_text('{"id": "a", "stage": "quality"}\n')
    with pytest.raises(TTScaleError, match="is not a drop record"):
        read_drops(str(path))
    with pytest.raises(TTScaleError, match="not JSON"):
        write_outputs(str(tmp_path / "o"), [], [StageCount("pool", 0, 0)], [], config={"f": object()}, seeds={})


def test_an_empty_selection_still_writes_a_loadable_dataset(tmp_path):
    import datasets

    write_outputs(str(tmp_path), [], [StageCount("pool", 2, 0)], [Drop("a", "pool", "empty"), Drop("b", "pool", "empty")],
                  config={}, seeds={})
    ds = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert tuple(ds.column_names) == S1K_COLUMNS and len(ds) == 0
    assert os.path.getsize(tmp_path / "trace_lengths.png") > 0
