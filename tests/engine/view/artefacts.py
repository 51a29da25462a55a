"""Real inputs for the viewer's tests, made in-process in seconds: a trace and a search tree from tiny random
models (the same code paths as ``ttscale generate --trace`` and ``ttscale search --tree``), an eval run directory
written through the run store, and a curation output written by ``curation.output.write_outputs``."""

from __future__ import annotations

import json
import os
import zlib

from conftest import make_tiny_model

from benchmarks.eval.report import report
from benchmarks.eval.store import RunStore, new_row
from curation.output import StageCount, write_outputs
from curation.schema import Drop, Question
from engine.engine import ThinkingEngine
from engine.logits.budget_state import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.search import SearchConfig, Searcher, VerifierPRM
from engine.trace import write_trace


def forcing_model(tokenizer):
    """One token in six is an end token (none of the forced texts): thinking tries to end early, so the budget
    injects "Wait" and records suppressed endings, then caps thinking and the answer."""
    forced = set(tokenizer.encode("Wait\n<|im_start|>answer\nFinal Answer:", add_special_tokens=False))
    model = make_tiny_model(init=0.2, seed=2)
    model.generation_config.eos_token_id = [2] + [t for t in range(3, 49152, 6) if t not in forced]
    return model


def make_trace(path, tokenizer, model=None) -> list[dict]:
    """Two prompts with min/max thinking budgets and an answer cap, sampled, traced; returns the records."""
    engine = ThinkingEngine(model or forcing_model(tokenizer), tokenizer, format="s1")
    results = engine.generate(["What is 2 + 3?", "Name a colour."],
                              budget=BudgetConfig(min_thinking_tokens=16, max_thinking_tokens=28, max_answer_tokens=6),
                              sampling=SamplingConfig(temperature=1.0, seed=3), trace=True)
    write_trace(str(path), results)
    return [r for res in results for r in res.trace]


def hashed(question, steps):
    """A deterministic stand-in PRM: a score in [0, 1) from each step's text."""
    return [zlib.crc32(s.encode()) % 1000 / 1000 for s in steps]


def make_tree(path, tokenizer) -> dict:
    """DVTS (N=8, M=2: four subtrees) over two questions on a tiny model whose steps end at "e"; returns the JSON."""
    model = make_tiny_model(init=0.2, seed=1)
    model.generation_config.eos_token_id = [2] + list(range(3, 49152, 8))
    searcher = Searcher(model, tokenizer, SearchConfig("dvts", n=8, beam_width=2, max_steps=4, max_step_tokens=5, delimiter="e"),
                        prm=VerifierPRM(hashed), sampling=SamplingConfig(temperature=1.0, seed=7))
    results = searcher.search(["What is 2 + 3?", "What is 4 * 4?"])
    results[0].tree.write(str(path))
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def make_eval(out_dir) -> list[dict]:
    """A run directory with a sequential method over three budgets and a parallel one over N, 6 problems each;
    rows written by the run store, the report drawn; returns the rows."""
    rows = []
    config = {"dataset": "synthetic", "model": "tiny", "think_end": "<|im_start|>answer"}
    with RunStore(str(out_dir), config) as store:
        for p in range(6):
            for b in (8, 16, 32):
                ok = (p * b) % 3 != 0
                rows.append(new_row(f"p{p}", "budget", {"max_thinking_tokens": b}, compute=b - p, correct=ok,
                                    prompt=f"Question {p}: <b>what</b> is {p} + {p}?",
                                    generation=f"thinking about {p} for {b}<|im_start|>answer\nFinal Answer: {2 * p if ok else -1}",
                                    extracted=str(2 * p if ok else -1), gold=str(2 * p), thinking_tokens=b - p, answer_tokens=4))
            for n in (1, 4):
                ok = p % (2 if n == 1 else 3) != 0
                rows.append(new_row(f"p{p}", "majority", {"n": n}, compute=n, correct=ok, prompt=f"Question {p}",
                                    generation=f"votes {n}<|im_start|>answer\n{p}", extracted=str(p), gold=str(p if ok else -p),
                                    thinking_tokens=10 * n, answer_tokens=2))
        for r in rows:
            store.append(r)
        store.merge()
    report(str(out_dir))
    return rows


_MADE: dict = {}


def made(tmp_path_factory, tokenizer) -> tuple:
    """All four inputs, made once per test session (test_load and test_browser share them): (folder, records)."""
    if not _MADE:
        d = tmp_path_factory.mktemp("view-inputs")
        _MADE["dir"] = d
        _MADE["made"] = {"trace": make_trace(d / "trace.jsonl", tokenizer), "tree": make_tree(d / "tree.json", tokenizer),
                         "eval": make_eval(d / "eval"), "curation": make_curation(d / "cur")}
    return _MADE["dir"], _MADE["made"]


def make_curation(out_dir) -> dict:
    """Twelve questions in, quality drops two (figures), selection keeps four; returns report.json's content."""
    def traced(i):
        return Question(f"Question {i}: what is {i} squared?", solution=f"{i * i}", answer=str(i * i), source="synthetic/Algebra",
                        metadata={"domain": {"code": "11" if i % 2 else "51", "name": "", "method": "subject", "detail": ""},
                                  "traces": [{"thinking": f"think {i}", "attempt": f"Answer: {i * i}", "thinking_tokens": 100 + 10 * i,
                                              "finish_reason": "stop"}], "cot_type": "math", "level": 3})
    pool = [traced(i) for i in range(12)]
    drops = [Drop(q.id, "quality", "figure", "[asy]", q.source) for q in pool[:2]]
    drops += [Drop(q.id, "selection", "not_selected", "", q.source) for q in pool[2:8]]
    counts = [StageCount("pool", 12, 12), StageCount("quality", 12, 10), StageCount("selection", 10, 4)]
    write_outputs(str(out_dir), pool[8:], counts, drops, config={}, seeds={"selection": 1}, candidates=pool[2:])
    with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as fh:
        return json.load(fh)
