"""The real embedded model behind ``ttscale serve``, through the official ``openai`` client: replies separate
thinking from the answer, budgets hold (thinking counted from the streamed per-token logprobs, not from usage),
logprobs are there, a greedy request gets the same tokens batched as alone, and search runs as a request."""

import concurrent.futures as cf

import pytest
from openai import OpenAI
from served import Served

QUESTION = [{"role": "user", "content": "What is 7 * 8?"}]


@pytest.fixture(scope="module")
def smol_server():
    """A server on the real embedded model, for end-to-end replies."""
    s = Served("--served-model-name", "smol")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(smol_server):
    return OpenAI(base_url=smol_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _reasoning_entries(logprobs):
    return (logprobs.model_extra or {}).get("reasoning_content") or []


def test_models_lists_the_served_name(client):
    assert [m.id for m in client.models.list().data] == ["smol"]


def test_chat_separates_thinking_and_answer_within_budget(client):
    r = client.chat.completions.create(
        model="smol", messages=QUESTION, logprobs=True, top_logprobs=2,
        extra_body={"min_thinking_tokens": 24, "max_thinking_tokens": 48, "max_answer_tokens": 24})
    [c] = r.choices
    thinking = c.message.model_extra["reasoning_content"]
    entries = _reasoning_entries(c.logprobs)
    # counted independently: one logprob entry per thinking token, and they spell the reasoning text
    assert 24 <= len(entries) <= 48
    assert "".join(e["token"] for e in entries) == thinking
    assert "<|im_end|>" not in thinking and "</think>" not in thinking  # no end of turn sampled inside thinking
    assert r.usage.completion_tokens_details.reasoning_tokens == len(entries)
    assert c.message.content.strip() and c.finish_reason in ("stop", "length")
    assert r.usage.model_extra["answer_tokens"] <= 24
    assert len(c.logprobs.content) >= r.usage.model_extra["answer_tokens"]
    assert all(len(e.top_logprobs) == 2 and e.logprob <= 0 for e in c.logprobs.content)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_minimum_replaces_the_end_of_turn_and_vllm_budget_name(client):
    r = client.chat.completions.create(model="smol", messages=QUESTION, logprobs=True,
                                       extra_body={"min_thinking_tokens": 40, "thinking_token_budget": 40})
    [c] = r.choices
    entries = _reasoning_entries(c.logprobs)
    assert len(entries) == 40                       # min == max: exactly 40 thinking tokens
    assert r.usage.model_extra["continuations"] >= 1  # the small model tried to stop early and was told "Wait"
    assert c.message.content.strip()                # an answer, not an empty stop


def test_streaming_chunks_carry_reasoning_then_content(client):
    stream = client.chat.completions.create(
        model="smol", messages=QUESTION, stream=True, logprobs=True, stream_options={"include_usage": True},
        extra_body={"min_thinking_tokens": 8, "max_thinking_tokens": 16, "max_answer_tokens": 16})
    reasoning, content, order, finish, usage, counted = "", "", [], None, None, 0
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            delta = ch.delta.model_extra.get("reasoning_content")
            if delta:
                reasoning += delta
                order.append("r")
                counted += len(_reasoning_entries(ch.logprobs)) if ch.logprobs else 0
            if ch.delta.content:
                content += ch.delta.content
                order.append("c")
            finish = ch.finish_reason or finish
    assert reasoning and content and finish in ("stop", "length")
    assert order == sorted(order, key=lambda x: x == "c")  # all thinking before any answer
    assert 8 <= counted <= 16 and usage.completion_tokens_details.reasoning_tokens == counted


def test_greedy_request_is_the_same_batched_as_alone(client):
    body = dict(model="smol", messages=QUESTION, max_tokens=40, extra_body={"max_thinking_tokens": 24})
    alone = client.chat.completions.create(**body).choices[0].message
    others = [dict(model="smol", messages=[{"role": "user", "content": f"Name {k} animals."}], max_tokens=40 + k,
                   extra_body={"max_thinking_tokens": 8 + 4 * k}) for k in range(7)]
    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client.chat.completions.create, **o) for o in others[:4]]
        mine = pool.submit(client.chat.completions.create, **body)
        futures += [pool.submit(client.chat.completions.create, **o) for o in others[4:]]
        batched = mine.result().choices[0].message
        assert all(f.result().choices for f in futures)
    assert (batched.content, batched.model_extra["reasoning_content"]) == (alone.content, alone.model_extra["reasoning_content"])


def test_n_choices_with_a_seed_repeat_and_differ(client):
    body = dict(model="smol", messages=QUESTION, n=3, temperature=1.0, seed=11, max_tokens=30,
                extra_body={"max_thinking_tokens": 16})
    a = [c.message.model_extra["reasoning_content"] for c in client.chat.completions.create(**body).choices]
    b = [c.message.model_extra["reasoning_content"] for c in client.chat.completions.create(**body).choices]
    assert a == b and len(set(a)) > 1


def test_completions_endpoint(client):
    r = client.completions.create(model="smol", prompt="The capital of France is", max_tokens=20, logprobs=2,
                                  extra_body={"max_thinking_tokens": 6, "max_answer_tokens": 8})
    [c] = r.choices
    assert c.model_extra["reasoning_content"] and c.text
    assert len(c.logprobs.tokens) == len(c.logprobs.token_logprobs) and all(len(t) == 2 for t in c.logprobs.top_logprobs)


def test_search_request_returns_the_chosen_answer_and_completions(client):
    r = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "What is 3 + 4?"}], seed=3,
        extra_body={"search": {"strategy": "best-of-n", "n": 2, "max_steps": 2, "max_step_tokens": 24,
                               "return_completions": True}})
    info = r.model_extra["ttscale"]["search"]
    assert info["strategy"] == "best-of-n" and len(info["completions"]) == 2
    scores = [c["score"] for c in info["completions"]]
    assert all(isinstance(s, float) for s in scores)
    if info["chosen"] is not None:
        assert r.choices[0].message.content == info["completions"][info["chosen"]]["text"]
        assert info["completions"][info["chosen"]]["answer"] == info["answer"]
