"""The whole pipeline through ``ttscale curate`` on a tiny random model: every stage runs, the counts add up stage by
stage, the dataset loads with ``datasets`` in s1K's columns, a second run redoes nothing, and bad input is one sentence."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, launch_two

from curation.pipeline import pipeline_config
from curation.schema import STAGES
from engine.cli.main import main
from engine.errors import TTScaleError

S1K_COLUMNS = ["solution", "question", "cot_type", "source_type", "metadata", "cot", "thinking_trajectories", "attempt"]


def _files(tmp_path, tiny_model_dir):
    evals = tmp_path / "evals.jsonl"
    planted = "a farmer keeps exactly seventeen brown goats in the barn"
    evals.write_text(json.dumps({"problem": f"Tell me why {planted} today."}) + "\n")
    local = tmp_path / "local.jsonl"
    figure = {"q": "Look at the figure. [asy] draw((0,0)--(1,1)); [/asy] What is the slope?", "a": "1"}  # traced, then quality drops it
    rows = [figure] + [{"q": f"Sam has {i} apples and buys {i + 2} more. How many apples does Sam have now?", "a": str(2 * i + 2)}
            for i in range(1, 9)]
    rows.append({"q": f"Why do you think {planted} now?", "a": "17"})                      # contaminated
    rows.append({"q": rows[1]["q"].upper(), "a": rows[1]["a"]})                           # an exact duplicate
    local.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "curate.yaml"
    config.write_text(f"""
pool:
  sources: ["synthetic limit=24 seed=1", "{local} fields=question=q,answer=a"]
decontaminate:
  eval_sets: ["{evals}:problem"]
traces:
  - source: teacher
  - source: engine
    model: {tiny_model_dir}
    max_thinking_tokens: 4
    max_answer_tokens: 3
    batch_size: 4
    max_questions: 5
difficulty:
  graders: ["{tiny_model_dir}"]
  max_thinking_tokens: 3
  max_answer_tokens: 2
  batch_size: 8
select:
  k: 10
""")
    return config


def test_the_whole_pipeline_then_a_rerun_that_redoes_nothing(tmp_path, tiny_model_dir, capsys):
    config = _files(tmp_path, tiny_model_dir)
    out = str(tmp_path / "run")
    assert main(["curate", "--config", str(config), "--out", out, "--no-progress"]) == 0
    captured = capsys.readouterr()
    with open(os.path.join(out, "report.json"), encoding="utf-8") as fh:
        report = json.load(fh)
    stages = report["stages"]
    assert [s["stage"] for s in stages] == list(STAGES)
    for before, s in zip([None] + stages, stages):
        assert s["in"] == s["out"] + s["dropped"]
        if before is not None:
            assert s["in"] == before["out"]
    assert stages[0]["out"] == 24 + 11
    reasons = {s["stage"]: s["reasons"] for s in stages}
    assert reasons["decontaminate"]["contaminated"] == 1  # the planted 8-gram
    drops = [json.loads(line) for line in open(os.path.join(out, "stages", "02-decontaminate", "drops.jsonl"), encoding="utf-8")]
    assert any(d["reason"] == "duplicate" and d["source"].endswith("local.jsonl") for d in drops)  # the upper-cased copy
    assert reasons["quality"] == {"figure": 1}
    assert reasons["traces"] == {"no_trace": 9 - 5}  # 9 local questions reach traces, the engine traces 5 of them
    assert stages[-1]["out"] == report["rows"] == 10
    import datasets  # deferred: only this test needs the library's loader

    ds = datasets.load_from_disk(os.path.join(out, "dataset"))
    assert ds.column_names == S1K_COLUMNS and len(ds) == 10
    assert all(isinstance(t, list) and t and t[0] for t in ds["thinking_trajectories"])
    assert "difficulty:" in captured.err and "select:" in captured.err
    # Started again: every stage is done with the same settings, so nothing runs and the dataset is the same.
    assert main(["curate", "--config", str(config), "--out", out, "--no-progress"]) == 0
    again = capsys.readouterr().err
    assert again.count("done already with these settings") == len(STAGES)
    assert len(datasets.load_from_disk(os.path.join(out, "dataset"))) == 10
    # A local source file that changed is another pool: the pool runs again (and so does everything after it).
    with open(tmp_path / "local.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"q": "Kim has 3 pears and eats one. How many pears are left?", "a": "2"}) + "\n")
    assert main(["curate", "--config", str(config), "--out", out, "--no-progress"]) == 0
    third = capsys.readouterr().err
    assert "pool: 36 in, 36 kept" in third and "done already" not in third


def test_one_stage_alone_reads_the_previous_stage(tmp_path, tiny_model_dir, capsys):
    config = _files(tmp_path, tiny_model_dir)
    out = str(tmp_path / "run")
    assert main(["curate", "traces", "--config", str(config), "--out", out]) == 2
    assert "the decontaminate stage has not run here yet" in capsys.readouterr().err
    assert main(["curate", "pool", "--config", str(config), "--out", out, "--no-progress"]) == 0
    assert main(["curate", "decontaminate", "--config", str(config), "--out", out, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "pool: 35 in, 35 kept" in err and "decontaminate: 35 in, " in err and "contaminated 1" in err


@pytest.mark.parametrize("yaml_text, message", [
    ("traces:\n  - source: teacher\n    bogus: 1\n", "unknown setting `traces.bogus`"),
    ("selct:\n  k: 3\n", "unknown key 'selct'"),
    ("select:\n  k: 0\n", "in the `select` section: k must be"),
    ("difficulty:\n  graders: [/no/such/model]\n", "difficulty grader /no/such/model cannot be loaded"),
])
def test_bad_config_is_one_sentence_before_any_stage(tmp_path, capsys, yaml_text, message):
    config = tmp_path / "c.yaml"
    config.write_text("pool:\n  sources: [synthetic]\n" + yaml_text)
    out = tmp_path / "run"
    assert main(["curate", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttscale: error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()  # refused before the run directory was made


def test_pipeline_config_sections():
    config = pipeline_config({"pool": {"sources": ["synthetic"]}, "traces": [{"source": "teacher"}, {"source": "engine", "max_questions": 3}],
                              "select": {"k": 5}})
    assert [s.config.source for s in config.traces] == ["teacher", "engine"] and config.traces[1].max_questions == 3
    assert config.select.k == 5 and set(config.to_json()) == set(STAGES)
    with pytest.raises(TTScaleError, match="unknown section `selct`; did you mean `select`?"):
        pipeline_config({"selct": {}})


def test_a_pool_is_required_and_source_flags_count(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["curate", "--out", str(out)]) == 2
    assert "the pool has no sources; give them as `pool: {sources: [...]}` in --config, or --source NAME" in capsys.readouterr().err
    assert main(["curate", "pool", "--out", str(out), "--source", "synthetic limit=5", "--no-progress"]) == 0
    assert "pool: 5 in, 5 kept" in capsys.readouterr().err


def test_two_processes_curate_the_same_dataset_as_one(tmp_path, tiny_model_dir):
    """``accelerate launch`` with two CPU processes (gloo): the traces and difficulty work is shared, rank 0 writes,
    and the dataset equals the one-process run's, row for row."""
    config = _files(tmp_path, tiny_model_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = ["-m", "engine.cli", "curate", "--config", str(config), "--no-progress"]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    subprocess.run([sys.executable, *args, "--out", one], cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    proc = subprocess.run(launch_two() + [*args, "--out", two], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "over 2 processes" in proc.stderr  # the stage caches saw both ranks
    shards = [f for f in os.listdir(os.path.join(two, "cache")) if ".rank" in f]
    assert not shards, shards  # rank 0 merged every rank's cache rows
    import pyarrow.parquet as pq  # deferred: only this test reads the Parquet file

    a, b = pq.read_table(os.path.join(one, "s1k.parquet")).to_pylist(), pq.read_table(os.path.join(two, "s1k.parquet")).to_pylist()
    assert len(a) == 10 and a == b
