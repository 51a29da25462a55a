"""Kill and resume: a run SIGKILLed part-way and started again ends with every row exactly once, equal to an
uninterrupted run (greedy budget forcing and a seeded sampling pool, tiny random model, one thread everywhere)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, TESTS_DIR, make_tiny_model

from benchmarks.eval.config import EvalConfig
from benchmarks.eval.runner import run_eval
from benchmarks.eval.store import SAMPLES, read_samples, row_key

TESTS = TESTS_DIR
CONFIG = dict(dataset="synthetic", limit=6, methods=("budget", "majority"), budgets=(4, 8, 16, 24), n=(1, 2),
              max_answer_tokens=4, max_steps=2, max_step_tokens=4, batch_size=2, search_batch=2, format="think-tags",
              model="tiny-random")
TOTAL = 6 * 4 + 6 * 2

WORKER = """
import json, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from conftest import REPO, TESTS_DIR, make_tiny_model
from transformers import AutoTokenizer
from engine.models import prepare_tokenizer
from benchmarks.eval.config import EvalConfig
from benchmarks.eval.runner import run_eval
tok = prepare_tokenizer(AutoTokenizer.from_pretrained({smol!r}))
config = EvalConfig(**json.loads({config!r}))
run_eval(config, {out!r}, model=make_tiny_model(init=0.2), tokenizer=tok, progress=False, log=lambda m: None)
"""


def config():
    return EvalConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in CONFIG.items()})


def strip(rows):
    """Rows without their wall time (the only field that differs between two identical runs)."""
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def merged(out):
    with open(os.path.join(out, SAMPLES), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tokenizer):
    """The uninterrupted run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = str(tmp_path_factory.mktemp("ref") / "run")
        run_eval(config(), out, model=make_tiny_model(init=0.2), tokenizer=tokenizer, progress=False, log=lambda m: None)
    finally:
        torch.set_num_threads(before)
    rows = merged(out)
    assert len(rows) == TOTAL
    return rows


def shard_lines(out):
    path = os.path.join(out, "samples.rank0.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as fh:
        return fh.read().count(b"\n")


def test_sigkill_part_way_then_resume_equals_uninterrupted(tmp_path, reference, smol_dir, tokenizer, one_thread):
    out = str(tmp_path / "run")
    code = WORKER.format(tests=TESTS, smol=smol_dir, config=json.dumps(CONFIG), out=out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while shard_lines(out) < 7 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    written = shard_lines(out)
    assert 7 <= written < TOTAL, (written, err.decode()[-2000:])
    assert not os.path.exists(os.path.join(out, SAMPLES))  # killed before the merge

    result = run_eval(config(), out, model=make_tiny_model(init=0.2), tokenizer=tokenizer, progress=False, log=lambda m: None)
    rows = merged(out)
    assert result.rows_written == TOTAL - written  # nothing written twice
    keys = [row_key(r["problem_id"], r["method"], r["setting"]) for r in rows]
    assert len(keys) == len(set(keys)) == TOTAL
    assert strip(rows) == strip(reference)
    assert not [f for f in os.listdir(out) if f.startswith("samples.rank")]


def test_torn_row_inside_a_half_done_unit(tmp_path, reference, tokenizer, one_thread):
    """A kill in the middle of a unit, during a write: the unit's finished row is kept, its torn row is cut off and
    written again, the rest of the unit (and run) is done once."""
    out = str(tmp_path / "run")
    os.makedirs(out)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump({"fingerprint": "", "config": config().to_dict()}, fh)
    first = [r for r in reference if r["method"] == "budget" and r["setting"] == {"max_thinking_tokens": 8}]
    kept, torn = first[0], first[1]  # arith1-0 and arith1-1: one unit (batch of 2)
    line = json.dumps(torn, sort_keys=True, separators=(",", ":"))
    with open(os.path.join(out, "samples.rank1.jsonl"), "w") as fh:  # another process count wrote it: still read
        fh.write(json.dumps(kept, sort_keys=True, separators=(",", ":")) + "\n")
    with open(os.path.join(out, "samples.rank0.jsonl"), "w") as fh:
        fh.write(line[: len(line) // 2])
    assert len(read_samples(out)) == 1
    result = run_eval(config(), out, model=make_tiny_model(init=0.2), tokenizer=tokenizer, progress=False, log=lambda m: None)
    assert result.rows_written == TOTAL - 1
    assert strip(merged(out)) == strip(reference)
