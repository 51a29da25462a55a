"""The report: hand-computed metrics.json, a readable two-panel PNG, a matching summary.md, redrawn from rows alone."""

import json
import os

import pytest

from benchmarks.eval.report import aggregate, compute_metrics, report, setting_label
from benchmarks.eval.store import RunStore, new_row, read_samples
from engine.errors import TTScaleError

CONFIG = {"dataset": "synthetic:arith:1", "model": "smollm2-135m", "limit": 4}

# budget, 128 tokens: compute 50,100,150,100 → x = 100, correct 1/4; 256 tokens: 200,300,200,100 → x = 200, 2/4
BUDGET = {128: ([50, 100, 150, 100], [True, False, False, False]),
          256: ([200, 300, 200, 100], [True, True, False, False])}
MAJORITY = {1: [True, False, False, False], 2: [True, True, False, False], 4: [True, True, True, False]}


def fill_budget(store):
    for p in range(4):
        for cap, (tokens, correct) in BUDGET.items():
            store.append(new_row(f"q{p}", "budget", {"max_thinking_tokens": cap}, tokens[p], correct[p],
                                 thinking_tokens=tokens[p], answer_tokens=5, wall_s=0.5))


def fill_majority(store):
    for p in range(4):
        for n, correct in MAJORITY.items():
            store.append(new_row(f"q{p}", "majority", {"n": n}, n, correct[p], thinking_tokens=100 * n))


@pytest.fixture()
def run_dir(tmp_path):
    out = str(tmp_path / "run")
    with RunStore(out, CONFIG) as store:
        fill_budget(store)
        fill_majority(store)
        store.merge()
    return out


def test_metrics_match_hand_computation(run_dir):
    paths = report(run_dir)
    with open(paths["metrics"]) as fh:
        m = json.load(fh)
    assert m["config"] == CONFIG and m["rows"] == 4 * 5 and m["warnings"] == []
    budget = [s for s in m["settings"] if s["method"] == "budget"]
    assert [(s["x"], s["accuracy"], s["problems"]) for s in budget] == [(100.0, 0.25, 4), (200.0, 0.5, 4)]
    assert budget[1]["within_budget"] == 0.75  # 300 > 256 for one sample
    assert budget[0]["wall_s"] == 2.0 and budget[0]["answer_tokens"] == 5.0
    assert budget[0]["ci_low"] < 0.25 < budget[0]["ci_high"]
    b = m["methods"]["budget"]
    assert b["control"] == 1.0 and b["performance"] == 0.5
    assert b["scaling"] == pytest.approx(0.25 / 100) and b["scaling_x100"] == pytest.approx(0.25)
    maj = m["methods"]["majority"]
    # pairs (1,2): .25/1, (1,4): .5/3, (2,4): .25/2 → mean (0.25 + 0.1667 + 0.125) / 3
    assert maj["scaling"] == pytest.approx((0.25 + 0.5 / 3 + 0.125) / 3)
    assert maj["control"] is None and maj["performance"] == 0.75 and maj["scaling_kind"] == "parallel"


def test_figure_and_summary_are_written_and_match(run_dir):
    import matplotlib.image as mpimg

    paths = report(run_dir)
    with open(paths["figure"], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    h, w = mpimg.imread(paths["figure"]).shape[:2]
    assert w > 1200 and h > 500  # two readable panels side by side
    with open(paths["summary"]) as fh:
        md = fh.read()
    assert "| budget | max_thinking_tokens=128 | 4 | 100.0 | 25.0 | " in md
    assert "| budget | max_thinking_tokens=256 | 4 | 200.0 | 50.0 | " in md
    assert "| majority | n=4 | 4 | 4 | 75.0 | " in md
    assert "| budget | sequential | 2 | 100% | 0.25 | 50.0 |" in md


def test_report_redraws_from_samples_alone(run_dir):
    first = report(run_dir)
    with open(first["metrics"]) as fh:
        before = fh.read()
    for p in first.values():
        os.remove(p)
    again = report(run_dir)
    with open(again["metrics"]) as fh:
        assert fh.read() == before
    assert sorted(os.listdir(run_dir)) == ["config.json", "metrics.json", "samples.jsonl", "scaling.png", "summary.md"]


def test_report_of_an_unfinished_run_reads_shards_and_warns(tmp_path):
    out = str(tmp_path / "run")
    with RunStore(out, CONFIG) as store:  # killed after budget 128 on q0..q3 and budget 256 on q0..q1
        for p in range(4):
            store.append(new_row(f"q{p}", "budget", {"max_thinking_tokens": 128}, 64, p == 0, thinking_tokens=64))
        for p in range(2):
            store.append(new_row(f"q{p}", "budget", {"max_thinking_tokens": 256}, 128, True, thinking_tokens=128))
    paths = report(out)
    with open(paths["metrics"]) as fh:
        m = json.load(fh)
    assert [s["problems"] for s in m["settings"]] == [4, 2]
    assert len(m["warnings"]) == 1 and "different problem sets" in m["warnings"][0]
    with open(paths["summary"]) as fh:
        assert "Warnings:" in fh.read()


def test_only_sequential_methods_still_draw_both_panels(tmp_path):
    out = str(tmp_path / "run")
    with RunStore(out, CONFIG) as store:
        fill_budget(store)
    m = compute_metrics(read_samples(out))
    assert set(m["methods"]) == {"budget"}
    assert os.path.getsize(report(out)["figure"]) > 10_000


def test_empty_run_and_labels():
    with pytest.raises(TTScaleError, match="no sample rows"):
        aggregate([])
    assert setting_label({"n": 4, "m": 4}) == "m=4, n=4"
    assert setting_label({}) == "default"
    with pytest.raises(TTScaleError, match="does not exist"):
        report("/nonexistent/run")


def test_a_parallel_sweep_over_another_key_gets_one_curve_per_value(tmp_path):
    rows = [new_row(f"q{p}", "beam", {"n": n, "m": m}, n, (p + n + m) % 2 == 0) for p in range(2) for n in (4, 16) for m in (2, 4)]
    m = compute_metrics(rows)
    assert set(m["methods"]) == {"beam (m=2)", "beam (m=4)"}
    assert all(v["runs"] == 2 for v in m["methods"].values())
    plain = compute_metrics([new_row("q0", "dvts", {"n": n, "m": 4}, n, True) for n in (4, 16)])
    assert set(plain["methods"]) == {"dvts"}
