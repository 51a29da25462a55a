"""The request side of the OpenAI-compatible API: parse and check a JSON body into a :class:`Spec`, torch-free.

Every check runs here, in the HTTP handler, before a request reaches the model loop; a refused request gets a 400
with an OpenAI-style error object (:func:`error_body`) and the server keeps serving. Checks, in order:

    1. the body is a JSON object (not too large: ``ServeOptions.max_request_bytes``, checked by the app)
    2. its fields are known and of the right type (pydantic, strict: ``"n": "2"`` and ``"n": true`` are refused)
    3. their values make sense together: ``BudgetConfig`` and ``SamplingConfig`` check budgets and sampling as the
       CLI does (``min_thinking_tokens`` > ``max_thinking_tokens`` is refused, named by the request's field name)
    4. against the server: the model name, ``n`` and ``max_tokens`` limits, the prompt length against the context
       (checked by the app once the prompt is tokenised)

Field names follow OpenAI's chat and completions APIs, plus the thinking fields users know from other servers
(REFERENCE §8): ``min_thinking_tokens`` / ``max_thinking_tokens`` (SGLang), ``thinking_token_budget`` (vLLM, a
maximum), ``num_ignore``, ``ignore_str``, ``final_answer_str``, ``max_answer_tokens``, ``min_answer_tokens`` (default
1: a reply never ends with an empty answer; 0 gives ``ThinkingEngine.generate``'s behaviour) and ``format``, and the
``search`` extension (best-of-n, weighted, majority, beam, dvts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import ConfigError
from engine.logits.budget_state import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.search.config import STRATEGIES, SearchConfig

MAX_STOP = 4            # OpenAI's limit on stop sequences
MAX_TOP_LOGPROBS = 20   # OpenAI's limit on top_logprobs
FORMATS = ("s1", "think-tags")
SEARCH_TEMPERATURE = 0.8  # a search request's default when the server's default is greedy


class RequestError(Exception):
    """A request refused with an HTTP status, a sentence, the offending field (``param``) and an error code."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = message, param, code, status, kind


def error_body(err: RequestError) -> dict:
    """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}}


# ─── the JSON schema (types only; values are checked by the engine's own configs below) ────────────────────────────

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class SearchRequest(_Strict):
    """The ``search`` extension: run a test-time search instead of one budget-forced sample per choice."""

    strategy: str
    n: Annotated[int, Field(ge=1)] = 4
    beam_width: Annotated[int, Field(ge=1)] | None = None
    max_steps: Annotated[int, Field(ge=1)] | None = None
    max_step_tokens: Annotated[int, Field(ge=1)] | None = None
    return_completions: bool = False


class _Common(_Strict):
    model: str
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    # thinking
    min_thinking_tokens: int | None = None
    max_thinking_tokens: int | None = None
    thinking_token_budget: int | None = None
    num_ignore: int | None = None
    ignore_str: str | list[str] | None = None
    final_answer_str: str | None = None
    max_answer_tokens: int | None = None
    min_answer_tokens: int | None = None
    format: str | None = None
    search: SearchRequest | None = None


class ChatRequest(_Common):
    messages: list[Message]
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None


class CompletionRequest(_Common):
    prompt: str | list[str]
    logprobs: int | None = None   # the legacy API: the number of top logprobs, 0..5
    echo: bool = False


# ─── what the model loop needs ─────────────────────────────────────────────────────────────────────────────────────

@dataclass
class Spec:
    """A checked request, as the model loop takes it (one per prompt; ``/v1/completions`` may send several)."""

    kind: str                               # "chat" or "completion"
    messages: list[dict] | None             # chat: role/content dicts (content flattened to text)
    prompt: str | None                      # completion: the raw prompt
    n: int
    budget: BudgetConfig
    sampling: SamplingConfig
    max_tokens: int | None                  # None: up to the context (and the server's limit)
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    logprobs: bool
    top_logprobs: int
    format: str | None                      # None: the server's format
    min_answer_tokens: int = 1              # end of turn is blocked until the answer has this many tokens
    search: SearchRequest | None = None


def parse_json(body: bytes) -> dict:
    """The request body as a JSON object; refuses invalid JSON and any other top-level value."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(f"the request body is not valid JSON ({e}); send a JSON object", code="invalid_json") from None
    if not isinstance(data, dict):
        raise RequestError(f"the request body must be a JSON object, got a JSON {type(data).__name__}", code="invalid_json")
    return data


def _schema_error(e: ValidationError) -> RequestError:
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        return RequestError(f"unknown field `{loc}`; see the README's API section for the fields this server takes",
                            param=loc, code="unknown_field")
    if kind == "missing":
        return RequestError(f"the field `{loc}` is required", param=loc, code="missing_field")
    got = first.get("input")
    shown = json.dumps(got)[:80] if not isinstance(got, (dict, list)) else type(got).__name__
    return RequestError(f"`{loc}`: {first['msg'].lower()} (got {shown})", param=loc, code="invalid_type")


_BUDGET_NAMES = {"ignore_strs": "ignore_str"}


def _check_int(value, name: str, least: int, most: int | None = None) -> None:
    if value is None:
        return
    if value < least or (most is not None and value > most):
        bound = f"between {least} and {most}" if most is not None else f">= {least}"
        raise RequestError(f"`{name}` must be {bound}, got {value}", param=name, code="invalid_value")


def parse_request(data: dict, kind: str, *, default_sampling: SamplingConfig, max_n: int,
                  max_tokens_limit: int) -> list[Spec]:
    """Check a decoded body for ``/v1/chat/completions`` (``kind="chat"``) or ``/v1/completions`` (``"completion"``)
    and return one :class:`Spec` per prompt. Refuses (:class:`RequestError`, status 400) unknown fields, wrong
    types, out-of-range values, contradictory budgets, unsupported options (penalties other than 0) and
    ``max_tokens`` above the server's limit. The model name and the prompt length are the app's to check.
    """
    try:
        req = (ChatRequest if kind == "chat" else CompletionRequest).model_validate(data)
    except ValidationError as e:
        raise _schema_error(e) from None
    if not req.model.strip():
        raise RequestError("`model` is empty; use an id from /v1/models", param="model", code="invalid_value")
    _check_int(req.n, "n", 1, max_n)
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name) not in (None, 0, 0.0):
            raise RequestError(f"`{name}` is not supported by this server (only 0); leave it out",
                               param=name, code="unsupported")
    max_tokens = req.max_tokens
    if kind == "chat" and req.max_completion_tokens is not None:
        if max_tokens is not None and max_tokens != req.max_completion_tokens:
            raise RequestError("`max_tokens` and `max_completion_tokens` differ; give one of them", param="max_tokens",
                               code="invalid_value")
        max_tokens = req.max_completion_tokens
    _check_int(max_tokens, "max_tokens", 1, max_tokens_limit)
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise RequestError(f"`stop` takes at most {MAX_STOP} non-empty strings, got {list(stop)!r}", param="stop",
                           code="invalid_value")
    # logprobs: chat takes a bool and top_logprobs; legacy completions an int (the top count)
    if kind == "chat":
        logprobs, top = req.logprobs, req.top_logprobs or 0
        _check_int(req.top_logprobs, "top_logprobs", 0, MAX_TOP_LOGPROBS)
        if req.top_logprobs and not req.logprobs:
            raise RequestError("`top_logprobs` needs `logprobs: true`", param="top_logprobs", code="invalid_value")
    else:
        _check_int(req.logprobs, "logprobs", 0, 5)
        logprobs, top = req.logprobs is not None, req.logprobs or 0
        if req.echo:
            raise RequestError("`echo` is not supported by this server; leave it out", param="echo", code="unsupported")
    if req.format is not None and req.format not in FORMATS:
        raise RequestError(f"`format` {req.format!r} is unknown; use one of {', '.join(FORMATS)}", param="format",
                           code="invalid_value")
    _check_int(req.min_answer_tokens, "min_answer_tokens", 0)
    if req.min_answer_tokens and req.max_answer_tokens is not None and req.min_answer_tokens > req.max_answer_tokens:
        raise RequestError(f"`min_answer_tokens` ({req.min_answer_tokens}) is larger than `max_answer_tokens` "
                           f"({req.max_answer_tokens})", param="min_answer_tokens", code="invalid_value")
    budget = _budget(req)
    sampling = _sampling(req, default_sampling)
    if req.search is not None:
        _check_search(req)
    if req.stream and req.search is not None:
        raise RequestError("`stream` with `search` is not supported: a search chooses its answer at the end; "
                           "send the request without `stream`", param="stream", code="unsupported")
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    if req.stream_options is not None and not req.stream:
        raise RequestError("`stream_options` needs `stream: true`", param="stream_options", code="invalid_value")
    common = dict(n=req.n, budget=budget, sampling=sampling, max_tokens=max_tokens, stop=stop, stream=req.stream,
                  include_usage=include_usage, logprobs=logprobs, top_logprobs=top, format=req.format,
                  min_answer_tokens=1 if req.min_answer_tokens is None else req.min_answer_tokens,
                  search=req.search)
    if kind == "chat":
        if not req.messages:
            raise RequestError("`messages` is empty; send at least one message", param="messages", code="invalid_value")
        messages = [{"role": "system" if m.role == "developer" else m.role,
                     "content": m.content if isinstance(m.content, str) else "".join(p.text for p in m.content)}
                    for m in req.messages]
        if messages[-1]["role"] == "assistant":
            raise RequestError("the last message is the assistant's; end `messages` with a user (or system) message",
                               param="messages", code="invalid_value")
        if not any(m["content"].strip() for m in messages):
            raise RequestError("every message is empty; send some text", param="messages", code="invalid_value")
        return [Spec("chat", messages, None, **common)]
    prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
    if not prompts or any(not p for p in prompts):
        raise RequestError("`prompt` must be a non-empty string or a list of them", param="prompt", code="invalid_value")
    return [Spec("completion", None, p, **common) for p in prompts]


def _budget(req: _Common) -> BudgetConfig:
    cap = req.max_thinking_tokens
    if req.thinking_token_budget is not None:
        if cap is not None and cap != req.thinking_token_budget:
            raise RequestError("`max_thinking_tokens` and `thinking_token_budget` (vLLM's name for the same maximum) "
                               "differ; give one", param="thinking_token_budget", code="invalid_value")
        cap = req.thinking_token_budget
    args = {"min_thinking_tokens": req.min_thinking_tokens or 0, "max_thinking_tokens": cap,
            "num_ignore": req.num_ignore or 0, "max_answer_tokens": req.max_answer_tokens,
            "answer_without_budget": True}  # every reply ends with an answer, as `ttscale generate` does
    if req.ignore_str is not None:
        args["ignore_strs"] = req.ignore_str
    if req.final_answer_str is not None:
        args["final_answer_str"] = req.final_answer_str
    try:
        return BudgetConfig(**args)
    except ConfigError as e:
        name = _BUDGET_NAMES.get(e.field, e.field)
        if name == "max_thinking_tokens" and req.thinking_token_budget is not None:
            name = "thinking_token_budget"
        raise RequestError(e.render(_BUDGET_NAMES), param=name, code="invalid_value") from None


def _sampling(req: _Common, default: SamplingConfig) -> SamplingConfig:
    t = default.temperature if req.temperature is None else req.temperature
    if req.search is not None and req.temperature is None and t == 0:
        t = SEARCH_TEMPERATURE  # candidates must differ; search-and-learn samples at 0.8
    p = default.top_p if req.top_p is None else req.top_p
    seed = default.seed if req.seed is None else req.seed
    if t is not None and t > 2:
        raise RequestError(f"`temperature` must be between 0 and 2, got {t}", param="temperature", code="invalid_value")
    try:
        return SamplingConfig(temperature=t, top_p=p, top_k=default.top_k, seed=seed)
    except ConfigError as e:
        raise RequestError(str(e), param=e.field, code="invalid_value") from None


def _check_search(req: _Common) -> None:
    s = req.search
    if s.strategy not in STRATEGIES:
        raise RequestError(f"`search.strategy` {s.strategy!r} is unknown; use one of {', '.join(STRATEGIES)}",
                           param="search.strategy", code="invalid_value")
    if req.n != 1:
        raise RequestError("`n` with `search` is not supported: the search returns one chosen answer "
                           "(set `search.n` for its width)", param="n", code="unsupported")
    if s.n > 1 and req.temperature == 0:
        raise RequestError(f"`temperature` 0 is greedy, so the {s.n} candidates of the search would be identical; "
                           "use a temperature above 0 (or leave it out: 0.8)", param="temperature", code="invalid_value")
    try:
        search_config(s, SearchConfig())
    except ConfigError as e:
        raise RequestError(str(e), param=f"search.{e.field}", code="invalid_value") from None


def search_config(s: SearchRequest, base: SearchConfig) -> SearchConfig:
    """The server's :class:`SearchConfig` with a request's choices applied (``beam_width`` defaults to
    ``min(n, base.beam_width)`` so that ``n`` alone is always valid). Refuses what :class:`SearchConfig` refuses."""
    width = s.beam_width if s.beam_width is not None else min(s.n, base.beam_width)
    changes = {"strategy": s.strategy, "n": s.n, "beam_width": width}
    if s.max_steps is not None:
        changes["max_steps"] = s.max_steps
    if s.max_step_tokens is not None:
        changes["max_step_tokens"] = s.max_step_tokens
    return replace(base, **changes)
