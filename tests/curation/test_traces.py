"""The traces stage: one shape from three sources; engine traces cached per question, resumed after a SIGKILL without
tracing a finished question again, and equal to an uninterrupted run."""

import glob
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO

from curation.cache import StageCache
from curation.schema import Question
from curation.traces import TraceConfig, trace_questions, trace_tokens
from engine.answers import extract_answer
from engine.engine import ThinkingEngine
from engine.errors import ConfigError, TTScaleError
from engine.models import load_model

pytestmark = pytest.mark.usefixtures("one_thread_module")
KEYS = {"thinking", "attempt", "answer", "thinking_tokens", "finish_reason", "model"}
TINY = dict(format="s1", max_thinking_tokens=6, max_answer_tokens=3)


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir):
    lm = load_model(tiny_model_dir)
    return ThinkingEngine(lm.model, lm.tokenizer, format="s1")


def counting(engine, calls):
    """The engine with every prompt it generates for recorded in ``calls``."""
    real = engine.iter_generate

    def iter_generate(prompts, *args, **kwargs):
        calls.extend(prompts)
        return real(prompts, *args, **kwargs)

    engine.iter_generate = iter_generate
    return engine


def test_config_refusals():
    with pytest.raises(ConfigError, match="temperature 0 is greedy, so the 4 samples per question would be identical") as err:
        TraceConfig(samples_per_question=4)
    assert err.value.field == "temperature"
    TraceConfig(source="teacher", samples_per_question=4)  # the teacher varies its slips, not a sampler
    for bad, name in (({"source": "api"}, "source"), ({"max_thinking_tokens": 0}, "max_thinking_tokens"),
                      ({"source": "teacher", "slip_rate": 2}, "slip_rate"), ({"batch_size": 0}, "batch_size"),
                      ({"answer_style": "latex"}, "answer_style"), ({"format": "nope"}, None)):
        with pytest.raises(TTScaleError) as err:
            TraceConfig(**bad)
        assert name is None or err.value.field == name
    with pytest.raises(TTScaleError, match="work directory"):
        trace_questions([Question("x")], TraceConfig())


def test_column_import_s1k_style(tokenizer):
    rows = [Question("q1", metadata={"thinking_trajectories": ["Let me think.\nSo 4."], "attempt": "So the answer is $\\boxed{4}$."}),
            Question("q2", metadata={"attempt": "Answer: 3"}),
            Question("q3", metadata={"cot": "two words", "answer_text": "Answer: 7"})]
    drops = []
    out = list(trace_questions(rows, TraceConfig(source="column", source_model="gemini"), drops=drops))
    assert [q.question for q in out] == ["q1"] and rows[0].metadata.get("traces") is None  # inputs untouched
    traces = out[0].metadata["traces"]
    assert traces["source"] == "column" and traces["tokens"] == "words"
    (s,) = traces["samples"]
    assert set(s) == KEYS and s["answer"] == "4" and s["model"] == "gemini" and s["thinking_tokens"] == 5
    assert [(d.reason, d.stage) for d in drops] == [("no_trace", "traces")] * 2 and "thinking_trajectories" in drops[0].detail
    named = list(trace_questions(rows[2:], TraceConfig(source="column", thinking_column="cot", attempt_column="answer_text"),
                                 tokenizer=tokenizer))
    assert named[0].metadata["traces"]["samples"][0]["answer"] == "7"
    assert named[0].metadata["traces"]["samples"][0]["thinking_tokens"] == len(tokenizer("two words", add_special_tokens=False)["input_ids"])
    assert trace_tokens(out[0]) == 5 and trace_tokens(rows[0]) is None


def test_teacher_source():
    qs = [Question("What is (3 + 4) * 2?", answer="14"), Question("Name a prime.")]
    drops = []
    (q,) = trace_questions(qs, TraceConfig(source="teacher", samples_per_question=3, slip_rate=0.5, seed=1), drops=drops)
    samples = q.metadata["traces"]["samples"]
    assert len(samples) == 3 and all(KEYS <= set(s) and s["answer"] == "14" for s in samples)
    assert drops[0].reason == "no_trace" and "teacher cannot solve" in drops[0].detail


def test_engine_traces_are_cached_per_question(tiny_engine, tmp_path):
    qs = [Question(f"What is {i} + 2?") for i in range(5)]
    cfg = TraceConfig(model="tiny", samples_per_question=2, temperature=1.0, seed=3, batch_size=4, **TINY)
    calls = []
    out = list(trace_questions(qs, cfg, str(tmp_path), engine=counting(tiny_engine, calls), progress=False))
    assert len(calls) == 10 and [q.id for q in out] == [q.id for q in qs]
    for q in out:
        t = q.metadata["traces"]
        assert t["source"] == "engine" and len(t["samples"]) == 2
        for s in t["samples"]:
            assert set(s) == KEYS and s["model"] == "tiny" and 0 < s["thinking_tokens"] <= 6
            assert s["answer"] == extract_answer(s["attempt"])
    assert out[0].metadata["traces"]["samples"][0] != out[0].metadata["traces"]["samples"][1]  # two draws
    assert StageCache(str(tmp_path), "traces", cfg.cache_settings()).done == 5
    again = list(trace_questions(qs, cfg, str(tmp_path), engine=tiny_engine, progress=False))
    assert len(calls) == 10 and again == out  # all cached: no model call
    fresh = list(trace_questions(qs, cfg, str(tmp_path / "other"), engine=tiny_engine, progress=False))
    assert fresh == out  # seeds come from the units' question ids: a rerun draws the same samples
    other_seed = TraceConfig(**{**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "seed": 4})
    assert list(trace_questions(qs, other_seed, str(tmp_path), engine=tiny_engine, progress=False)) != out


SCRIPT = r'''
import json, os, signal, sys
import torch
torch.set_num_threads(1)
from curation.cache import StageCache
from curation.schema import Question
from curation.traces import TraceConfig, trace_questions
from engine.engine import ThinkingEngine

model_dir, work, log, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
real_generate, real_put = ThinkingEngine.iter_generate, StageCache.put

def iter_generate(self, prompts, *args, **kwargs):
    for batch in real_generate(self, prompts, *args, **kwargs):
        with open(log, "a") as fh:  # a generation that came back: a question traced
            fh.write("".join(json.dumps(r.prompt) + "\n" for r in batch))
        yield batch

def put(self, qid, result):
    done = real_put(self, qid, result)
    if len(self) == kill_after:  # SIGKILL right after this row is on disk: half-way through a unit of two
        os.kill(os.getpid(), signal.SIGKILL)
    return done

ThinkingEngine.iter_generate, StageCache.put = iter_generate, put
qs = [Question(f"What is {i} + {i}?") for i in range(12)]
cfg = TraceConfig(model=model_dir, format="s1", max_thinking_tokens=6, max_answer_tokens=3, batch_size=2)
print(json.dumps([q.metadata["traces"] for q in trace_questions(qs, cfg, work, progress=False)]))
'''


def test_sigkill_and_resume_traces_nothing_twice(tiny_model_dir, tmp_path):
    script, work, log = tmp_path / "run.py", str(tmp_path / "work"), str(tmp_path / "calls.log")
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    first = subprocess.run([sys.executable, str(script), tiny_model_dir, work, log, "5"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    cached_first = {json.loads(line)["id"] for line in open(glob.glob(os.path.join(work, "cache", "traces-*.jsonl"))[0])
                    if line.endswith("\n")}
    assert len(cached_first) == 5
    traced_first = [json.loads(line) for line in open(log)]
    open(log, "w").close()

    second = subprocess.run([sys.executable, str(script), tiny_model_dir, work, log, "0"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    traced_second = [json.loads(line) for line in open(log)]
    qs = [Question(f"What is {i} + {i}?") for i in range(12)]
    by_text = {q.question: q.id for q in qs}
    assert not cached_first & {by_text[p] for p in traced_second}  # nothing finished is traced again
    assert {by_text[p] for p in traced_first + traced_second} == set(by_text.values())  # none lost
    lines = open(glob.glob(os.path.join(work, "cache", "traces-*.jsonl"))[0]).read().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(by_text.values())  # one row each

    resumed = json.loads(second.stdout)
    lm = load_model(tiny_model_dir)
    cfg = TraceConfig(model=tiny_model_dir, batch_size=2, **TINY)
    straight = [q.metadata["traces"] for q in trace_questions(qs, cfg, str(tmp_path / "straight"), progress=False,
                                                              engine=ThinkingEngine(lm.model, lm.tokenizer, format="s1"))]
    assert resumed == straight  # greedy: the interrupted run equals an uninterrupted one
