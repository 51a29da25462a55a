"""The model loop in-process, stepped by hand on the tiny random model: batched rows get exactly the tokens they
get alone, and exactly what ``ThinkingEngine.generate`` (budget forcing as one LogitsProcessor in ``generate``,
the slow source of truth) gives for the same budget; the prefix cache changes nothing but the work done."""

import pytest
import torch
from conftest import make_tiny_model

from engine.engine import ThinkingEngine
from engine.logits.budget import BudgetConfig, BudgetTokens
from engine.logits.sampling import SamplingConfig
from engine.serve.jobs import Delta, Done, Job, JobQueue
from engine.serve.metrics import Metrics
from engine.serve.worker import Worker

pytestmark = pytest.mark.usefixtures("one_thread_module")

GREEDY = SamplingConfig()


@pytest.fixture(scope="module")
def engine(tokenizer):
    model = make_tiny_model(init=0.2)
    return ThinkingEngine(model, tokenizer, format="s1", template="plain")


def _job(engine, prompt, budget, sampling=GREEDY, n=1, max_tokens=60, stop=(), logprobs=False, top=0):
    events = []
    ids = engine.tokenizer(engine.render(prompt), add_special_tokens=True)["input_ids"]
    tokens = BudgetTokens.build(engine.tokenizer, engine.format, budget, engine.model.generation_config.eos_token_id)
    job = Job(ids, n, budget, tokens, sampling, max_tokens, stop, logprobs, top, events.append)
    return job, events


def _drain(worker, limit=2000):
    for _ in range(limit):
        if not worker.rows and not len(worker.queue):
            return
        worker.step()
    raise AssertionError("the worker did not finish")


def _worker(engine, **kw):
    return Worker(engine.model, engine.tokenizer, JobQueue(64), Metrics(), **kw)


def _texts(events, index=0):
    out = {"reasoning": "", "content": ""}
    for e in events:
        if isinstance(e, Delta) and e.index == index:
            out[e.channel] += e.text
    done = [e for e in events if isinstance(e, Done) and e.index == index]
    assert len(done) == 1
    return out, done[0]


BUDGETS = [BudgetConfig(min_thinking_tokens=6, max_thinking_tokens=12, max_answer_tokens=5, answer_without_budget=True),
           BudgetConfig(max_thinking_tokens=20, num_ignore=1, max_answer_tokens=3, answer_without_budget=True),
           BudgetConfig(max_thinking_tokens=4, answer_without_budget=True)]
PROMPTS = ["What is 2 + 3?", "Name a colour.", "Count to five."]


def test_batched_rows_equal_rows_alone_and_the_logits_processor(engine):
    alone = []
    for p, b in zip(PROMPTS, BUDGETS):
        w = _worker(engine)
        job, events = _job(engine, p, b)
        w.queue.put(job)
        _drain(w)
        alone.append(_texts(events))
        w.manager.check_invariants()
    w = _worker(engine)
    batched = []
    for p, b in zip(PROMPTS, BUDGETS):
        job, events = _job(engine, p, b)
        w.queue.put(job)
        batched.append(events)
    _drain(w)
    for (text, done), events in zip(alone, batched):
        assert _texts(events) == (text, done)
    # the source of truth: budget forcing inside one model.generate call per prompt
    for p, b, (text, done) in zip(PROMPTS, BUDGETS, alone):
        [r] = engine.generate([p], budget=b, max_new_tokens=60)
        assert done.usage["thinking_tokens"] == r.thinking_tokens <= b.max_thinking_tokens
        assert done.usage["answer_tokens"] == r.answer_tokens
        assert done.usage["completion_tokens"] == len(r.token_ids)
        assert text["reasoning"] == r.thinking
        assert done.token_ids == r.token_ids
        assert text["content"].strip() == r.answer


def test_rows_joining_mid_flight_get_the_same_tokens(engine):
    b = BUDGETS[0]
    w = _worker(engine)
    job, ref = _job(engine, PROMPTS[0], b)
    w.queue.put(job)
    _drain(w)
    w = _worker(engine)
    first, events = _job(engine, PROMPTS[0], b)
    w.queue.put(first)
    for _ in range(5):
        w.step()
    late, late_events = _job(engine, PROMPTS[0], b)   # joins the running batch at step 6
    w.queue.put(late)
    _drain(w)
    assert _texts(events) == _texts(ref) == _texts(late_events)
    assert w.prefix.reused_tokens == len(first.prompt_ids)  # the second prompt ran nothing


def test_sampled_rows_repeat_with_a_seed_alone_or_batched(engine):
    s = SamplingConfig(temperature=1.0, top_p=0.9, seed=7)
    b = BUDGETS[1]
    w = _worker(engine)
    job, alone = _job(engine, PROMPTS[1], b, s, n=3)
    w.queue.put(job)
    _drain(w)
    w = _worker(engine)
    other, _ = _job(engine, PROMPTS[0], BUDGETS[0], SamplingConfig(temperature=0.7, seed=1), n=2)
    w.queue.put(other)
    w.step()
    job, batched = _job(engine, PROMPTS[1], b, s, n=3)
    w.queue.put(job)
    _drain(w)
    texts = [_texts(alone, i) for i in range(3)]
    assert texts == [_texts(batched, i) for i in range(3)]
    assert len({t[0]["reasoning"] for t in texts}) > 1  # the n choices differ


def test_prefix_cache_shares_the_prompt_and_changes_no_token(engine):
    budget = BUDGETS[2]
    runs = {}
    for entries in (0, 8):
        w = _worker(engine, prefix_entries=entries)
        outs = []
        for p in ("Tell me about cats.", "Tell me about dogs.", "Tell me about cats."):
            job, events = _job(engine, p, budget)
            w.queue.put(job)
            _drain(w)
            outs.append(_texts(events))
        runs[entries] = (outs, w.manager.stats().tokens_computed, w.prefix.reused_tokens)
        w.prefix.clear()
        w.manager.check_invariants()
        assert w.manager.stats().tree_tokens == 0  # every row and cached prompt released
    assert runs[0][0] == runs[8][0]
    assert runs[0][2] == 0 and runs[8][2] > 0
    assert runs[8][1] == runs[0][1] - runs[8][2]  # exactly the reused tokens were not computed


def test_max_tokens_stop_strings_and_logprobs(engine):
    w = _worker(engine)
    budget = BudgetConfig(max_thinking_tokens=30, answer_without_budget=True)
    job, events = _job(engine, PROMPTS[0], budget, max_tokens=7, logprobs=True, top=3)
    w.queue.put(job)
    _drain(w)
    text, done = _texts(events)
    assert done.finish_reason == "length" and done.usage["completion_tokens"] == 7
    entries = [x for e in events if isinstance(e, Delta) and e.logprobs for x in e.logprobs]
    assert len(entries) == done.usage["thinking_tokens"] == 7
    with torch.no_grad():
        logits = torch.log_softmax(engine.model(torch.tensor([job.prompt_ids])).logits[0, -1].float(), -1)
    assert entries[0]["logprob"] == pytest.approx(float(logits.max()), abs=1e-4)  # greedy: the top token
    assert [t["logprob"] for t in entries[0]["top_logprobs"]] == pytest.approx(logits.topk(3).values.tolist(), abs=1e-4)
    # a stop string found in the answer cuts the content before it
    job, events = _job(engine, PROMPTS[0], BUDGETS[0], max_tokens=60)
    w.queue.put(job)
    _drain(w)
    full, _ = _texts(events)
    assert len(full["content"]) > 4
    stop = full["content"][2:4]
    job, events = _job(engine, PROMPTS[0], BUDGETS[0], max_tokens=60, stop=(stop,))
    w.queue.put(job)
    _drain(w)
    cut, done = _texts(events)
    assert cut["content"] == full["content"][: full["content"].index(stop)] and done.detail == "stop_string"


def test_cancelled_job_frees_its_rows(engine):
    w = _worker(engine)
    job, _ = _job(engine, PROMPTS[0], BUDGETS[1], n=4)
    w.queue.put(job)
    w.step()
    assert len(w.rows) == 4
    job.cancel()
    w.step()
    assert not w.rows and w.metrics.cancelled_rows == 4
    w.prefix.clear()
    w.manager.check_invariants()
    assert w.manager.stats().tree_tokens == 0
