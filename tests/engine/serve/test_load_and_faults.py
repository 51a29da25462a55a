"""The server under load and faults, on the tiny random model (a step costs milliseconds): 100 concurrent
requests with mixed budgets, /health answering meanwhile; a client leaving mid-stream frees its row; a full queue
answers 429; SIGTERM lets in-flight requests finish. Every wait is bounded."""

import asyncio
import json
import os
import random
import re
import socket
import sys

import httpx2 as httpx  # the HTTP client the openai package itself uses
import pytest
from conftest import need_browser, run_cli
from openai import AsyncOpenAI, OpenAI
from served import Served, wait_for

from engine.view.browser import CHROMIUM_ARGS


@pytest.fixture(scope="module")
def tiny_server(chat_model_dir):
    """A server on the tiny random model (a step costs milliseconds): load, faults and malformed requests."""
    s = Served("--model", chat_model_dir, "--served-model-name", "tiny", "--max-batch", "32", "--max-queue", "128")
    yield s
    s.stop()


def _health(url):
    return httpx.get(url + "/health", timeout=10).json()


def _metric(url, name):
    text = httpx.get(url + "/metrics", timeout=10).text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_100_concurrent_requests_with_mixed_budgets(tiny_server):
    url = tiny_server.url
    rng = random.Random(0)
    budgets = [dict(min_thinking_tokens=rng.choice([0, 4, 8]), max_thinking_tokens=rng.choice([8, 16, 24]),
                    max_answer_tokens=rng.choice([4, 8])) for _ in range(100)]
    client = AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
    health = []

    async def one(k, b):
        body = dict(model="tiny", messages=[{"role": "user", "content": f"Question {k}?"}], max_tokens=64,
                    extra_body=b)
        if k % 2:  # half of them stream
            got, usage = {}, None
            stream = await client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
            async for chunk in stream:
                usage = chunk.usage or usage
                for ch in chunk.choices:
                    if ch.finish_reason:
                        got["finish"] = ch.finish_reason
            return usage.model_extra, got["finish"]
        r = await client.chat.completions.create(**body)
        return r.usage.model_extra, r.choices[0].finish_reason

    async def watch(done):
        async with httpx.AsyncClient(timeout=10) as h:
            while not done.is_set():
                r = await h.get(url + "/health")
                health.append((r.status_code, r.json()["running_rows"]))
                await asyncio.sleep(0.1)

    async def main():
        done = asyncio.Event()
        watcher = asyncio.create_task(watch(done))
        results = await asyncio.wait_for(asyncio.gather(*(one(k, b) for k, b in enumerate(budgets))), 300)
        done.set()
        await watcher
        return results

    results = asyncio.run(main())
    assert len(results) == 100
    for (usage, finish), b in zip(results, budgets):
        assert usage["thinking_tokens"] <= b["max_thinking_tokens"]
        assert usage["thinking_tokens"] >= b["min_thinking_tokens"] or finish == "length"
        assert usage["answer_tokens"] <= b["max_answer_tokens"]
    assert health and all(code == 200 for code, _ in health)
    assert max(rows for _, rows in health) > 1   # /health answered while rows were decoding together
    assert _metric(url, 'ttscale_requests_total{status="200"}') >= 100
    wait_for(lambda: _health(url)["running_rows"] == 0, 30)


def test_malformed_requests_get_400_error_objects(tiny_server):
    url = tiny_server.url + "/v1/chat/completions"
    ok = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    cases = {
        "bad json": b"{", "array": b"[1, 2]", "string": b'"hello"',
        "no model": {"messages": ok["messages"]}, "no messages": {"model": "tiny"},
        "empty messages": {**ok, "messages": []}, "unknown field": {**ok, "max_thinking_token": 4},
        "n string": {**ok, "n": "2"}, "n bool": {**ok, "n": True}, "n zero": {**ok, "n": 0}, "n huge": {**ok, "n": 1000},
        "temperature negative": {**ok, "temperature": -1}, "temperature high": {**ok, "temperature": 3},
        "top_p zero": {**ok, "top_p": 0}, "top_p high": {**ok, "top_p": 1.5},
        "max_tokens negative": {**ok, "max_tokens": -5}, "max_tokens huge": {**ok, "max_tokens": 10**9},
        "min above max": {**ok, "min_thinking_tokens": 50, "max_thinking_tokens": 10},
        "min negative": {**ok, "min_thinking_tokens": -1}, "num_ignore negative": {**ok, "num_ignore": -2},
        "max_answer zero": {**ok, "max_answer_tokens": 0}, "unknown model": {**ok, "model": "gpt-4"},
        "prompt too long": {**ok, "messages": [{"role": "user", "content": "word " * 5000}]},
        "five stops": {**ok, "stop": ["a", "b", "c", "d", "e"]}, "logprobs string": {**ok, "logprobs": "yes"},
        "top_logprobs high": {**ok, "logprobs": True, "top_logprobs": 50},
        "top_logprobs alone": {**ok, "top_logprobs": 2}, "bad role": {**ok, "messages": [{"role": "robot", "content": "x"}]},
        "content int": {**ok, "messages": [{"role": "user", "content": 5}]},
        "budgets differ": {**ok, "max_thinking_tokens": 20, "thinking_token_budget": 10},
        "unknown strategy": {**ok, "search": {"strategy": "mcts"}}, "empty ignore_str": {**ok, "ignore_str": ""},
        "negative seed": {**ok, "seed": -1}, "unknown format": {**ok, "format": "xml"},
        "penalty": {**ok, "frequency_penalty": 0.5}, "stream_options alone": {**ok, "stream_options": {"include_usage": True}},
        "last message assistant": {**ok, "messages": [{"role": "assistant", "content": "hi"}]},
        "float max_tokens": {**ok, "max_tokens": 4.5},
    }
    with httpx.Client(timeout=30) as h:
        for name, body in cases.items():
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = h.post(url, content=data, headers={"content-type": "application/json"})
            assert r.status_code == 400, (name, r.status_code, r.text)
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error" and err["message"] and err["code"], (name, err)
        assert len(cases) >= 20
        # the completions endpoint checks its own fields
        for body in ({"model": "tiny"}, {"model": "tiny", "prompt": ""}, {"model": "tiny", "prompt": "x", "logprobs": 9},
                     {"model": "tiny", "prompt": "x", "echo": True}):
            assert h.post(tiny_server.url + "/v1/completions", json=body).status_code == 400, body
        assert h.post(url, content=b"x" * (2 << 20)).status_code == 413
        assert h.get(tiny_server.url + "/v2/nothing").json()["error"]["code"] == "not_found"
        # and it still serves
        assert _health(tiny_server.url)["status"] == "ok"
        assert h.post(url, json=ok).json()["choices"][0]["finish_reason"] in ("stop", "length")
    assert tiny_server.proc.poll() is None


def test_a_client_that_leaves_mid_stream_frees_its_row(chat_model_dir):
    s = Served("--model", chat_model_dir, "--served-model-name", "tiny", "--max-batch", "4")
    try:
        long = {"model": "tiny", "messages": [{"role": "user", "content": "go"}], "max_tokens": 3000, "stream": True,
                "max_thinking_tokens": 2900}
        with httpx.Client(timeout=30) as h:
            with h.stream("POST", s.url + "/v1/chat/completions", json=long) as r:
                lines = r.iter_lines()
                for _ in range(10):
                    next(lines)
            # the connection is closed: the row must be freed long before its 3000 tokens
            wait_for(lambda: _metric(s.url, "ttscale_cancelled_rows_total") == 1, 30)
            assert _health(s.url)["running_rows"] == 0
        # the next four requests still run together, at the full batch of 4
        client = OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=120)
        seen = []

        async def main():
            loop = asyncio.get_running_loop()
            calls = [loop.run_in_executor(None, lambda: client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "go"}], max_tokens=400,
                extra_body={"max_thinking_tokens": 390})) for _ in range(4)]
            while not all(c.done() for c in calls):
                seen.append(_health(s.url)["running_rows"])
                await asyncio.sleep(0.02)
            return [c.result() for c in calls]

        replies = asyncio.run(asyncio.wait_for(main(), 120))
        assert all(r.usage.completion_tokens == 400 for r in replies)
        assert max(seen) == 4
    finally:
        s.kill()


def test_full_queue_answers_429_with_retry_after(chat_model_dir):
    s = Served("--model", chat_model_dir, "--served-model-name", "tiny", "--max-batch", "1", "--max-queue", "1",
               "--max-n", "1")
    try:
        long = {"model": "tiny", "messages": [{"role": "user", "content": "go"}], "max_tokens": 4000, "stream": True}
        with httpx.Client(timeout=30) as a, httpx.Client(timeout=30) as b:
            with a.stream("POST", s.url + "/v1/chat/completions", json=long) as ra:
                lines_a = ra.iter_lines()  # kept: a dropped iterator closes the response, and the server frees the row
                next(lines_a)
                wait_for(lambda: _health(s.url)["running_rows"] == 1, 30)
                with b.stream("POST", s.url + "/v1/chat/completions", json=long) as rb:
                    assert rb.status_code == 200
                    wait_for(lambda: _health(s.url)["queue_depth"] == 1, 30)
                    r = httpx.post(s.url + "/v1/chat/completions", json={**long, "stream": False}, timeout=30)
                    assert r.status_code == 429 and r.headers["retry-after"] == "1"
                    assert r.json()["error"]["code"] == "queue_full"
        # both streams closed: their rows are freed and the server takes work again
        wait_for(lambda: _health(s.url) == {"status": "ok", "running_rows": 0, "queue_depth": 0}, 30)
        r = httpx.post(s.url + "/v1/chat/completions", timeout=60,
                       json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        assert r.status_code == 200
    finally:
        s.kill()


def test_sigterm_lets_in_flight_requests_finish(chat_model_dir):
    s = Served("--model", chat_model_dir, "--served-model-name", "tiny")
    client = OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=120)

    async def main():
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(None, lambda: client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "go"}], max_tokens=600,
            extra_body={"max_thinking_tokens": 590}))
        await loop.run_in_executor(None, wait_for, lambda: _health(s.url)["running_rows"] == 1, 30)
        s.proc.send_signal(15)
        return await call

    try:
        reply = asyncio.run(asyncio.wait_for(main(), 180))
        assert reply.usage.completion_tokens == 600 and reply.choices[0].finish_reason == "length"
        assert s.proc.wait(60) == 0
        assert any("stopped after finishing in-flight requests" in line for line in s.lines)
        with pytest.raises(httpx.ConnectError):
            httpx.get(s.url + "/health", timeout=5)
    finally:
        s.kill()


def test_api_key_is_required_when_set(chat_model_dir):
    s = Served("--model", chat_model_dir, "--served-model-name", "tiny", env={"TTSCALE_API_KEY": "s3cret-key-1"})
    try:
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        for headers in ({}, {"Authorization": "Bearer wrong-key-00"}, {"Authorization": "s3cret-key-1"}):
            r = httpx.post(s.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert httpx.get(s.url + "/v1/models", timeout=30).status_code == 401
        assert httpx.get(s.url + "/health", timeout=30).status_code == 200  # health checks need no key
        client = OpenAI(base_url=s.url + "/v1", api_key="s3cret-key-1", max_retries=0)
        assert client.chat.completions.create(**body).choices
    finally:
        s.kill()


def test_bad_flags_and_a_busy_port_fail_before_the_model_loads(capsys):
    code, _, err = run_cli(capsys, "serve", "--port", "70000")
    assert code == 2 and "port" in err
    code, _, err = run_cli(capsys, "serve", "--host", "example.com")
    assert code == 2 and "not an IP address" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        code, _, err = run_cli(capsys, "serve", "--model", "/nonexistent/model", "--port", str(busy.getsockname()[1]))
    assert code == 2 and "cannot listen" in err


def test_the_viewer_is_served_at_view(tiny_server, tmp_path, tokenizer):
    """GET /view is the empty viewer; in a real browser it opens a trace file with no console error and no request
    beyond the page itself."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "view"))
    from artefacts import make_trace  # noqa: PLC0415  the viewer tests' helper module, found through sys.path

    r = httpx.get(tiny_server.url + "/view", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "ttscale view" in r.text
    records = make_trace(tmp_path / "t.jsonl", tokenizer)
    sync_playwright, path = need_browser("the /view browser test")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        page, seen, bad = b.new_page(), [], []
        page.on("request", lambda q: seen.append(q.url))
        page.on("console", lambda m: bad.append(m.text) if m.type == "error" else None)
        page.goto(tiny_server.url + "/view")
        page.wait_for_function("window.ttscaleView && window.ttscaleView.kind === 'picker'", timeout=30_000)
        page.set_input_files("#files", str(tmp_path / "t.jsonl"))
        page.wait_for_function("window.ttscaleView.kind === 'trace'", timeout=30_000)
        spans = page.locator("#tokens .t").count()
        b.close()
    assert spans == sum(1 for x in records if x["type"] == "token" and x["prompt_index"] == 0)
    assert bad == [] and seen == [tiny_server.url + "/view"]
