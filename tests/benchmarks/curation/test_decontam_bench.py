"""The decontamination benchmark (benchmarks/curation/decontam.py): a small run finds everything it planted, prints
one JSON line last, refuses bad options, and neither the options nor the benchmark import torch."""

import argparse
import json
import random
import subprocess
import sys

import pytest
from conftest import REPO

from benchmarks.curation import DecontamOptions
from benchmarks.curation.decontam import SPEC, build_pool, main, run, stand_in, vocabulary
from engine.errors import ConfigError


@pytest.fixture(autouse=True)
def offline_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TTSCALE_DATA", str(tmp_path))  # no local copies: every set is a stand-in, nothing is fetched
    monkeypatch.setattr("benchmarks.curation.decontam.data_dirs", lambda: [str(tmp_path)])


def test_a_small_run_finds_what_it_planted():
    result = run(DecontamOptions(questions=2000, planted=0.02))
    checks = result["figures"]["checks"]
    assert checks["all_found"], checks
    assert checks["contaminated"]["expected"] >= 30 and checks["near_duplicate"]["expected"] == 20
    assert all(v.startswith("stand-in") for v in result["config"]["eval_sets"].values())
    assert set(result["figures"]["phases"]) >= {"index", "decontam", "decontam-hash", "exact dedup", "dedup"}


def test_the_pool_is_deterministic_and_copies_follow_originals():
    vocab, cum = vocabulary(3000, random.Random(0))
    evals = {"math500": stand_in("math500", random.Random(1), vocab, cum)}
    a, truth = build_pool(DecontamOptions(questions=1000), evals)
    b, _ = build_pool(DecontamOptions(questions=1000), evals)
    assert [q.id for q in a] == [q.id for q in b] and len(a) == 1000
    first = {}
    for i, q in enumerate(a):
        first.setdefault(q.id, i)
    assert all(first[q.id] < i for i, q in enumerate(a) if q.source == "bench-copy")


def test_main_prints_the_json_line_last(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    SPEC.add_to(parser)
    out = tmp_path / "r.json"
    assert main(parser.parse_args(["--questions", "1000", "--json", "--out", str(out)])) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["benchmark"] == "curation-decontam"
    assert json.loads(out.read_text())["config"]["questions"] == 1000


@pytest.mark.parametrize("kwargs, field", [({"questions": 10}, "questions"), ({"planted": 0.5}, "planted"),
                                           ({"repeats": 0}, "repeats")])
def test_options_refuse_bad_values(kwargs, field):
    with pytest.raises(ConfigError) as err:
        DecontamOptions(**kwargs)
    assert err.value.field == field


def test_neither_the_options_nor_the_benchmark_import_torch():
    code = ("import sys, benchmarks.curation; assert 'torch' not in sys.modules and 'datasketch' not in sys.modules; "
            "import benchmarks.curation.decontam; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
