"""The OpenAI-compatible HTTP face of the model loop, on FastAPI (served by uvicorn).

    POST /v1/chat/completions   messages -> thinking (``reasoning_content``) and answer (``content``); SSE with ``stream``
    POST /v1/completions        a raw prompt (no chat template; thinking opens after it) -> ``text`` and ``reasoning_content``
    GET  /v1/models             the one model served
    GET  /health                200 while the model loop is alive (no key needed)
    GET  /metrics               Prometheus text: queue depth, running rows, tokens/s, time to first token (no key needed)
    GET  /view                  the viewer (``ttscale view``'s page, empty): open a trace, a search tree, an eval run's
                                metrics.json + samples.jsonl or a curation report.json in it; files stay in the browser

A handler checks everything (``engine.serve.protocol``, then the model name and the prompt against the context),
queues one :class:`~engine.serve.jobs.Job` per prompt and turns the loop's events into OpenAI's JSON: one
``chat.completion`` object, or ``chat.completion.chunk`` events ending with ``data: [DONE]``. A client that leaves
cancels its jobs (its rows are freed at the next step). Errors are OpenAI error objects: 400 for a bad request,
401 for a missing or wrong key (compared in constant time), 404 for an unknown path, 413 for a body over
``max_request_bytes``, 429 with ``Retry-After`` when the queue is full, 503 while shutting down.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import TTScaleError
from engine.formats import get_format
from engine.logits.budget_state import BudgetTokens
from engine.logits.sampling import SamplingConfig
from engine.search.config import SearchConfig
from engine.search.searcher import Searcher
from engine.search.select import choose_index
from engine.serve.jobs import Delta, Done, Failed, Job, JobQueue, QueueFull
from engine.serve.metrics import Metrics
from engine.serve.options import ServeOptions
from engine.serve.protocol import RequestError, Spec, error_body, parse_json, parse_request, search_config
from engine.serve.worker import Worker
from engine.view.page import render_page

RETRY_AFTER_S = 1


class Server:
    """Everything the handlers share: the model loop, its queue and metrics, the tokenizer, format and limits.

    ``fmt`` is the server's :class:`~engine.formats.ThinkingFormat` (a request may pick another with ``format``);
    ``style`` its prompt style; ``sampling`` the defaults for fields a request leaves out. ``prm`` scores search
    requests (None: the policy under ``options.prm_protocol``). Refuses nothing itself: :class:`ServeOptions` is checked.
    """

    def __init__(self, model, tokenizer, fmt, style, options: ServeOptions, sampling: SamplingConfig, model_name: str,
                 system: str | None = None, prm=None):
        self.model, self.tokenizer, self.fmt, self.style = model, tokenizer, fmt, style
        self.options, self.sampling, self.model_name, self.system, self.prm = options, sampling, model_name, system, prm
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)
        self.eos = model.generation_config.eos_token_id
        self.metrics = Metrics()
        self.queue = JobQueue(options.max_queue)
        self.worker = Worker(model, tokenizer, self.queue, self.metrics, options.max_batch, options.prefix_cache,
                             searcher_for=self._searcher)
        self._searchers: dict = {}
        self._tokens: dict = {}
        self.created = int(time.time())

    # ---- prompts and budgets ------------------------------------------------------------------------------------
    def format_for(self, spec: Spec):
        return self.fmt if spec.format is None or spec.format == self.fmt.name else get_format(spec.format)

    def render(self, spec: Spec) -> str:
        """The exact prompt text: the chat template over the messages (or the raw prompt), then the format's
        thinking-start string (never twice)."""
        fmt = self.format_for(spec)
        if spec.kind == "chat":
            messages = list(spec.messages)
            if self.system and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": self.system})
            if self.style.kind == "chat":
                text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            else:
                text = "\n\n".join(m["content"] for m in messages).rstrip() + "\n"
        else:
            text = spec.prompt
        if fmt.think_start and not text.rstrip().endswith(fmt.think_start.strip()):
            text += fmt.think_start
        return text

    def budget_tokens(self, spec: Spec) -> BudgetTokens:
        fmt = self.format_for(spec)
        b = spec.budget
        key = (fmt.name, fmt.think_end, b.ignore_strs, b.final_answer_str)
        if key not in self._tokens:
            try:
                self._tokens[key] = BudgetTokens.build(self.tokenizer, fmt, b, self.eos)
            except TTScaleError as e:
                raise RequestError(str(e), param="ignore_str", code="invalid_value") from None
        return self._tokens[key]

    def _searcher(self, job: Job):
        key = (job.search, job.sampling, job.budget)
        if key not in self._searchers:
            budget = job.budget if (job.budget.forces_thinking or job.budget.max_answer_tokens) else None
            self._searchers.clear()  # one at a time: a Searcher holds no memory between searches, only settings
            self._searchers[key] = Searcher(self.model, self.tokenizer, job.search, prm=self.prm, sampling=job.sampling,
                                            budget=budget, format=self.fmt, template=self.style.kind)
        return self._searchers[key]

    # ---- building jobs ------------------------------------------------------------------------------------------
    def jobs(self, specs: list[Spec], emit_for) -> list[Job]:
        """One :class:`Job` per spec; refuses (400) a prompt that leaves no room in the context for ``max_tokens``."""
        out = []
        for i, spec in enumerate(specs):
            if spec.search is not None:
                question = spec.messages[-1]["content"] if spec.kind == "chat" else spec.prompt
                ids = self.tokenizer(question)["input_ids"]
            else:
                ids = self.tokenizer(self.render(spec), add_special_tokens=self.style.add_special_tokens)["input_ids"]
            room = self.context - len(ids)
            if room < 1:
                raise RequestError(f"the prompt is {len(ids)} tokens, which fills the model's context of {self.context} "
                                   "tokens; shorten it", param="messages" if spec.kind == "chat" else "prompt",
                                   code="context_length_exceeded")
            max_tokens = spec.max_tokens
            if max_tokens is None:
                max_tokens = min(room, self.options.max_tokens_limit)
            elif max_tokens > room:
                raise RequestError(f"the prompt ({len(ids)} tokens) plus max_tokens ({max_tokens}) exceed the model's "
                                   f"context of {self.context} tokens; ask for at most {room}", param="max_tokens",
                                   code="context_length_exceeded")
            tokens = self.budget_tokens(spec)
            search, prompt = None, None
            if spec.search is not None:
                search, prompt = search_config(spec.search, SearchConfig()), question
            out.append(Job(ids, spec.n, spec.budget, tokens, spec.sampling, max_tokens, spec.stop, spec.logprobs,
                           spec.top_logprobs, emit_for(i), search=search, search_prompt=prompt,
                           return_completions=bool(spec.search and spec.search.return_completions),
                           min_answer_tokens=spec.min_answer_tokens))
        return out


# ─── responses ────────────────────────────────────────────────────────────────────────────────────────────────────

def _error(err: RequestError, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(err), status_code=err.status, headers=headers)


def _usage(prompt_tokens: int, per_choice: list[dict]) -> dict:
    total = {k: sum(u[k] for u in per_choice) for k in per_choice[0]} if per_choice else {}
    completion = total.get("completion_tokens", 0)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": total.get("thinking_tokens", 0)},
            **{k: v for k, v in total.items() if k != "completion_tokens"}}


class _Choice:
    def __init__(self):
        self.text = {"reasoning": "", "content": ""}
        self.logprobs = {"reasoning": [], "content": []}
        self.done: Done | None = None


async def _events(queue: asyncio.Queue, jobs: list[Job]):
    """Yield (job index, event) until every choice of every job is done; raises on a Failed event."""
    left = sum(j.n if j.search is None else 1 for j in jobs)
    while left:
        i, ev = await queue.get()
        if isinstance(ev, Failed):
            raise TTScaleError(ev.message)
        if isinstance(ev, Done) or (isinstance(ev, tuple) and ev[0] == "search"):
            left -= 1
        yield i, ev


def _choice_index(jobs: list[Job], i: int, index: int) -> int:
    return sum(j.n for j in jobs[:i]) + index


def create_app(server: Server) -> FastAPI:
    """The FastAPI application over ``server``; its lifespan starts the model loop and, on shutdown (after uvicorn
    has let in-flight requests finish), stops it."""
    opts = server.options

    @asynccontextmanager
    async def lifespan(app):
        server.worker.start()
        yield
        server.worker.stop(timeout=opts.shutdown_timeout)

    app = FastAPI(title="ttscale", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _error(RequestError(f"{request.method} {request.url.path}: {exc.detail}", code=code,
                                   status=exc.status_code))

    def check_key(request: Request) -> None:
        if opts.api_key is None:
            return
        got = request.headers.get("authorization", "")
        want = f"Bearer {opts.api_key}"
        if not hmac.compare_digest(got.encode(), want.encode()):
            raise RequestError("missing or wrong API key; send `Authorization: Bearer KEY`", code="invalid_api_key",
                               status=401, kind="authentication_error")

    async def read_body(request: Request) -> dict:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > opts.max_request_bytes:
            raise RequestError(f"the request body is {size} bytes; this server takes at most {opts.max_request_bytes}",
                               code="request_too_large", status=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > opts.max_request_bytes:
                raise RequestError(f"the request body exceeds {opts.max_request_bytes} bytes", code="request_too_large",
                                   status=413)
        return parse_json(bytes(body))

    @app.get("/health")
    async def health():
        alive = server.worker.thread is not None and server.worker.thread.is_alive()
        return JSONResponse({"status": "ok" if alive else "down", "running_rows": server.metrics.running,
                             "queue_depth": len(server.queue)}, status_code=200 if alive else 503)

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/view")
    async def view():
        return HTMLResponse(render_page(None))

    @app.get("/v1/models")
    async def models(request: Request):
        try:
            check_key(request)
        except RequestError as e:
            return _error(e)
        return {"object": "list", "data": [{"id": server.model_name, "object": "model", "created": server.created,
                                            "owned_by": "ttscale"}]}

    async def complete(request: Request, kind: str):
        t0 = time.monotonic()
        try:
            check_key(request)
            data = await read_body(request)
            specs = parse_request(data, kind, default_sampling=server.sampling, max_n=opts.n_limit,
                                  max_tokens_limit=opts.max_tokens_limit)
            if data["model"] != server.model_name:
                raise RequestError(f"model {data['model']!r} is not served here; use {server.model_name!r} "
                                   "(GET /v1/models)", param="model", code="model_not_found")
            loop = asyncio.get_running_loop()
            events: asyncio.Queue = asyncio.Queue()

            def emit_for(i):
                return lambda ev: loop.call_soon_threadsafe(events.put_nowait, (i, ev))

            jobs = server.jobs(specs, emit_for)
            for j, job in enumerate(jobs):
                try:
                    server.queue.put(job)
                except QueueFull as e:
                    for queued in jobs[:j]:
                        queued.cancel()
                    raise RequestError(str(e), code="queue_full", status=429 if not server.queue.closed else 503,
                                       kind="rate_limit_error") from None
        except RequestError as e:
            server.metrics.request(e.status)
            return _error(e, {"Retry-After": str(RETRY_AFTER_S)} if e.status in (429, 503) else None)
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        prompt_tokens = sum(len(j.prompt_ids) for j in jobs)
        if specs[0].stream:
            return StreamingResponse(_stream(server, kind, rid, specs[0], jobs, events, prompt_tokens, t0),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        collect = asyncio.ensure_future(_collect(server, kind, rid, jobs, events, prompt_tokens))
        try:
            while not (await asyncio.wait({collect}, timeout=0.5))[0]:
                if await request.is_disconnected():  # the client left: free its rows
                    collect.cancel()
                    for job in jobs:
                        job.cancel()
                    server.metrics.request(499)
                    return Response(status_code=499)
            body = collect.result()
        except TTScaleError as e:
            server.metrics.request(500)
            return _error(RequestError(str(e), code="internal_error", status=500, kind="server_error"))
        server.metrics.request(200, time.monotonic() - t0)
        return JSONResponse(body)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await complete(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete(request, "completion")

    return app


async def _collect(server: Server, kind: str, rid: str, jobs: list[Job], events: asyncio.Queue,
                   prompt_tokens: int) -> dict:
    """The non-streaming reply: every event gathered into one ``chat.completion`` / ``text_completion`` object."""
    total = sum(j.n if j.search is None else 1 for j in jobs)
    choices = [_Choice() for _ in range(total)]
    search = None
    async for i, ev in _events(events, jobs):
        if isinstance(ev, tuple):
            search = ev
            continue
        c = choices[_choice_index(jobs, i, ev.index)]
        if isinstance(ev, Delta):
            c.text[ev.channel] += ev.text
            if ev.logprobs:
                c.logprobs[ev.channel] += ev.logprobs
        elif isinstance(ev, Done):
            c.done = ev
    if search is not None:
        return _search_reply(server, kind, rid, jobs[0], search, prompt_tokens)
    out = []
    for n, c in enumerate(choices):
        logprobs = None
        if jobs[0].logprobs:
            logprobs = {"content": c.logprobs["content"], "reasoning_content": c.logprobs["reasoning"]}
        extra = {"finish_detail": c.done.detail, **c.done.usage}
        if kind == "chat":
            out.append({"index": n, "message": {"role": "assistant", "content": c.text["content"],
                                                "reasoning_content": c.text["reasoning"]},
                        "logprobs": logprobs, "finish_reason": c.done.finish_reason, "ttscale": extra})
        else:
            out.append({"index": n, "text": c.text["content"], "reasoning_content": c.text["reasoning"],
                        "logprobs": _legacy_logprobs(c.logprobs["content"]) if logprobs else None,
                        "finish_reason": c.done.finish_reason, "ttscale": extra})
    return {"id": rid, "object": "chat.completion" if kind == "chat" else "text_completion", "created": int(time.time()),
            "model": server.model_name, "choices": out, "usage": _usage(prompt_tokens, [c.done.usage for c in choices])}


def _legacy_logprobs(entries: list[dict]) -> dict:
    """The completions API's logprobs shape from per-token entries."""
    return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
            "text_offset": [sum(len(x["token"]) for x in entries[:k]) for k in range(len(entries))]}


def _search_reply(server: Server, kind: str, rid: str, job: Job, search: tuple, prompt_tokens: int) -> dict:
    _, result, wall = search
    rule = job.search.answer_rule
    answers = [c.answer for c in result.completions]
    at = choose_index(answers, [c.score for c in result.completions], rule)
    chosen = result.completions[at] if at is not None else (result.completions[0] if result.completions else None)
    text = chosen.text if chosen is not None else ""
    info = {"strategy": result.strategy, "answer": result.answer, "votes": result.votes, "chosen": at,
            "policy_forward_tokens": result.policy_forward_tokens, "prm_forward_tokens": result.prm_forward_tokens,
            "wall_s": round(wall, 3)}
    if job.return_completions:
        info["completions"] = [{"text": c.text, "answer": c.answer, "score": c.score, "step_scores": c.step_scores,
                                "finish_reason": c.finish_reason, "tokens": c.tokens} for c in result.completions]
    finish = "length" if chosen is not None and chosen.finish_reason == "length" else "stop"
    completion = sum(c.tokens for c in result.completions)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion,
             "completion_tokens_details": {"reasoning_tokens": 0}}
    choice = ({"index": 0, "message": {"role": "assistant", "content": text, "reasoning_content": None},
               "logprobs": None, "finish_reason": finish} if kind == "chat" else
              {"index": 0, "text": text, "logprobs": None, "finish_reason": finish})
    return {"id": rid, "object": "chat.completion" if kind == "chat" else "text_completion", "created": int(time.time()),
            "model": server.model_name, "choices": [choice], "usage": usage, "ttscale": {"search": info}}


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _stream(server: Server, kind: str, rid: str, spec: Spec, jobs: list[Job], events: asyncio.Queue,
                  prompt_tokens: int, t0: float):
    """The streaming reply: one chunk per delta, a last chunk per choice with its finish reason, usage if asked,
    then ``data: [DONE]``. A client that leaves cancels the jobs (the ``finally``)."""
    created = int(time.time())
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    base = {"id": rid, "object": obj, "created": created, "model": server.model_name}
    usages = []
    try:
        if kind == "chat":
            total = sum(j.n for j in jobs)
            for n in range(total):
                yield _sse({**base, "choices": [{"index": n, "delta": {"role": "assistant", "content": ""},
                                                 "logprobs": None, "finish_reason": None}]})
        async for i, ev in _events(events, jobs):
            n = _choice_index(jobs, i, ev.index)
            if isinstance(ev, Delta):
                field = "reasoning_content" if ev.channel == "reasoning" else "content"
                logprobs = {field: ev.logprobs} if ev.logprobs else None
                if kind == "chat":
                    choice = {"index": n, "delta": {field: ev.text}, "logprobs": logprobs, "finish_reason": None}
                else:
                    choice = {"index": n, "text": ev.text if field == "content" else "", "finish_reason": None,
                              "logprobs": _legacy_logprobs(ev.logprobs) if ev.logprobs and field == "content" else None}
                    if field == "reasoning_content":
                        choice["reasoning_content"] = ev.text
                yield _sse({**base, "choices": [choice]})
            elif isinstance(ev, Done):
                usages.append(ev.usage)
                end = {"index": n, "finish_reason": ev.finish_reason, "logprobs": None,
                       "ttscale": {"finish_detail": ev.detail, **ev.usage}}
                end.update({"delta": {}} if kind == "chat" else {"text": ""})
                yield _sse({**base, "choices": [end]})
        if spec.include_usage:
            yield _sse({**base, "choices": [], "usage": _usage(prompt_tokens, usages)})
        yield "data: [DONE]\n\n"
        server.metrics.request(200, time.monotonic() - t0)
    except TTScaleError as e:
        yield _sse(error_body(RequestError(str(e), code="internal_error", status=500, kind="server_error")))
        server.metrics.request(500)
    finally:
        for job in jobs:
            job.cancel()  # no-op for finished jobs; frees the rows of a client that left
