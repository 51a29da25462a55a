"""The difficulty stage: planted generations show that a solved question is dropped (s1) and that the LIMO band keeps
only low pass rates; an honest run on the tiny model has the right structure and pass rates equal to a recount."""

import os
from types import SimpleNamespace

import pytest

from benchmarks.data.synthetic import load_synthetic, read_answer
from curation.cache import StageCache
from curation.difficulty import DifficultyConfig, decide, difficulty_stage, reference_answer
from curation.schema import Question
from engine.engine import GenerationResult, ThinkingEngine
from engine.errors import TTScaleError
from engine.formats import get_format
from engine.models import load_model

pytestmark = pytest.mark.usefixtures("one_thread_module")


class Planted:
    """A stand-in engine whose k-th generation for a question answers ``replies[question][k]`` (cycled)."""

    def __init__(self, tokenizer, replies):
        self.tokenizer, self.replies, self.calls, self.seen = tokenizer, replies, [], {}
        self.format = get_format("s1")
        self.model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=tokenizer.eos_token_id))

    def iter_generate(self, prompts, budget=None, sampling=None, batch_size=8, **kwargs):
        out = []
        for p in prompts:
            i = self.seen.get(p, 0)
            self.seen[p] = i + 1
            reply = self.replies[p][i % len(self.replies[p])]
            text = f"<|im_start|>think\nhmm<|im_start|>answer\n{reply}"
            out.append(GenerationResult(prompt=p, thinking="hmm", answer=reply, thinking_tokens=3, answer_tokens=2,
                                        waits_injected=0, forced_stop=False, finish_reason="stop",
                                        token_ids=self.tokenizer.encode(text, add_special_tokens=False)))
        self.calls.extend(prompts)
        yield out


def cfg(**kw):
    return DifficultyConfig(**{"graders": ("weak", "strong"), **kw})


def test_config_refusals():
    for bad, name in (({"graders": ()}, "graders"), ({"graders": ("a", "a")}, "graders"), ({"rule": "easy"}, "rule"),
                      ({"samples": 4}, "temperature"), ({"samples": 0}, "samples"), ({"band_min": 0.5, "band_max": 0.2}, "band_min"),
                      ({"solved_at": 1.5}, "solved_at"), ({"max_thinking_tokens": 0}, "max_thinking_tokens")):
        with pytest.raises(TTScaleError) as err:
            cfg(**bad)
        assert err.value.field == name, bad
    assert DifficultyConfig().graders == ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B-Instruct")


def test_s1_drops_what_any_grader_solves(tokenizer, tmp_path):
    qs = [Question("What is 2+2?", answer="4"), Question("What is 3+3?", answer="6"), Question("What is 5+5?", answer="10"),
          Question("Name a colour."), Question("What is 1+1?", solution="One and one make $\\boxed{2}$.")]
    weak = Planted(tokenizer, {"What is 2+2?": ["Answer: 4"], "What is 3+3?": ["Answer: 5"], "What is 5+5?": ["Answer: 9"],
                               "What is 1+1?": ["Answer: 2"]})
    strong = Planted(tokenizer, {"What is 2+2?": ["Answer: 4"], "What is 3+3?": ["The answer is $\\boxed{6}$."],
                                 "What is 5+5?": ["Answer: 11"], "What is 1+1?": ["Answer: 2"]})
    drops = []
    kept = list(difficulty_stage(qs, cfg(), str(tmp_path), engines={"weak": weak, "strong": strong}, drops=drops, progress=False))
    assert [q.answer for q in kept] == ["10"]
    assert kept[0].metadata["difficulty"] == {"graders": {"weak": {"k": 1, "correct": 0, "pass_rate": 0.0},
                                                          "strong": {"k": 1, "correct": 0, "pass_rate": 0.0}},
                                              "trace_tokens": None}
    reasons = {d.id: (d.reason, d.detail) for d in drops}
    assert reasons[qs[0].id][0] == "solved" and reasons[qs[0].id][1].startswith("weak solves it (pass rate 1.00")
    assert reasons[qs[1].id] == ("solved", "strong solves it (pass rate 1.00 over 1 samples)")
    assert reasons[qs[3].id][0] == "no_reference" and "Name a colour." not in weak.calls  # never generated for
    assert reasons[qs[4].id][0] == "solved" and reference_answer(qs[4]) == "2"  # graded against the solution's box
    assert all(d.stage == "difficulty" for d in drops) and len(drops) == 4

    calls = len(weak.calls) + len(strong.calls)
    again = list(difficulty_stage(qs, cfg(), str(tmp_path), engines={"weak": weak, "strong": strong}, progress=False))
    assert again == kept and len(weak.calls) + len(strong.calls) == calls  # cached: no generation
    moved = [Question(q.question, answer="9", solution=q.solution) if q.answer == "10" else q for q in qs]
    (now,) = difficulty_stage(moved[2:3], cfg(rule="band", band_min=0.0, band_max=1.0), str(tmp_path),
                              engines={"weak": weak, "strong": strong}, progress=False)
    assert now.metadata["difficulty"]["graders"]["weak"]["correct"] == 1  # regraded from the cache, gold changed
    assert len(weak.calls) + len(strong.calls) == calls


def test_limo_band_keeps_low_but_not_zero(tokenizer, tmp_path):
    replies = {"q one?": ["Answer: 1", "Answer: 0", "Answer: 0", "Answer: 0"],      # 1/4
               "q two?": ["Answer: 1", "Answer: 1", "Answer: 0", "Answer: 0"],      # 2/4
               "q three?": ["Answer: 0"]}                                           # 0/4
    qs = [Question(q, answer="1") for q in replies]
    drops = []
    config = DifficultyConfig(graders=("g",), rule="band", band_min=0.1, band_max=0.3, samples=4, temperature=0.7)
    kept = list(difficulty_stage(qs, config, str(tmp_path), engines={"g": Planted(tokenizer, replies)}, drops=drops, progress=False))
    assert [q.question for q in kept] == ["q one?"]
    assert kept[0].metadata["difficulty"]["graders"]["g"] == {"k": 4, "correct": 1, "pass_rate": 0.25}
    assert [(d.reason, d.detail) for d in drops] == [("too_easy", "pass rate 0.50 (g 0.50) is above 0.3"),
                                                     ("too_hard", "pass rate 0.00 (g 0.00) is below 0.1")]
    pair = {"graders": {"a": {"k": 2, "correct": 0, "pass_rate": 0.0}, "b": {"k": 2, "correct": 1, "pass_rate": 0.5}}}
    assert decide(pair, config) is None  # the band reads the pass rate pooled over graders: 1 of 4
    assert decide(pair, DifficultyConfig(graders=("a", "b")))[1].startswith("b solves it (pass rate 0.50")  # s1: any grader


def test_synthetic_questions_are_graded_as_eval_grades_them(tokenizer, tmp_path):
    # "Final Answer: 2 + 6" restates the question: math-verify would call it 8, eval's synthetic grader reads 6.
    reply = {"What is 2 + 6?": ["Final Answer: 2 + 6"]}
    config = DifficultyConfig(graders=("g",), rule="band", band_min=0.0, band_max=1.0)
    (synth,) = difficulty_stage([Question("What is 2 + 6?", answer="8", source="synthetic:arith:1")], config,
                                str(tmp_path / "a"), engines={"g": Planted(tokenizer, reply)}, progress=False)
    (plain,) = difficulty_stage([Question("What is 2 + 6?", answer="8", source="math500")], config,
                                str(tmp_path / "b"), engines={"g": Planted(tokenizer, reply)}, progress=False)
    assert synth.metadata["difficulty"]["graders"]["g"]["correct"] == 0
    assert plain.metadata["difficulty"]["graders"]["g"]["correct"] == 1


def test_an_unloadable_grader_is_refused_before_any_work(tmp_path):
    work = str(tmp_path / "work")
    for spec, words in (("/no/such/model", "difficulty grader /no/such/model cannot be loaded: no such file or directory"),
                        ("not-a-model", "difficulty grader not-a-model cannot be loaded: unknown model name")):
        with pytest.raises(TTScaleError, match=words):
            difficulty_stage([Question("x", answer="1")], DifficultyConfig(graders=(spec,)), work)
    assert not os.path.exists(work)
    with pytest.raises(TTScaleError, match="which `graders` does not list"):
        difficulty_stage([], DifficultyConfig(graders=("a",)), work, engines={"b": None})


def test_tiny_model_end_to_end_pass_rates_equal_a_recount(tiny_model_dir, tmp_path):
    lm = load_model(tiny_model_dir)
    engine = ThinkingEngine(lm.model, lm.tokenizer, format="s1")
    problems = load_synthetic("synthetic:arith:1", limit=6)
    qs = [Question(p.question, answer=p.answer, source="synthetic:arith:1",
                   metadata={"traces": {"samples": [{"thinking_tokens": 4}, {"thinking_tokens": 7}]}} if i % 2 else {})
          for i, p in enumerate(problems)]
    config = DifficultyConfig(graders=("tiny",), rule="band", band_min=0.0, band_max=1.0, samples=3, temperature=1.0,
                              max_thinking_tokens=8, max_answer_tokens=4, batch_size=6)
    kept = list(difficulty_stage(qs, config, str(tmp_path), engines={"tiny": engine}, progress=False))
    assert [q.id for q in kept] == [q.id for q in qs]
    cache = StageCache(str(tmp_path), "difficulty", config.cache_settings("tiny"))
    for i, q in enumerate(kept):
        d = q.metadata["difficulty"]
        assert set(d) == {"graders", "trace_tokens"} and set(d["graders"]) == {"tiny"}
        assert d["trace_tokens"] == (5.5 if i % 2 else None)
        row = cache.get(q.id)
        assert len(row["texts"]) == 3 and all("<|im_start|>answer" in t for t in row["texts"])
        recount = sum(read_answer(t) == q.answer for t in row["texts"])
        assert d["graders"]["tiny"] == {"k": 3, "correct": recount, "pass_rate": recount / 3}
