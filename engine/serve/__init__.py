"""engine/serve: budget forcing and search behind an OpenAI-compatible HTTP API (``ttscale serve``).

    from engine.serve import Server, create_app, ServeOptions
    server = Server(model, tokenizer, fmt, style, ServeOptions(), SamplingConfig(), "smollm2-135m")
    uvicorn.run(create_app(server), host="127.0.0.1", port=8000)

Modules, one concept each — a pure core, then the thin adapters to torch and to FastAPI:

- ``options``   — ``ServeOptions``: where to listen, who may call, limits (the ``ttscale serve`` flags)
- ``protocol``  — request bodies checked into ``Spec`` objects; OpenAI error objects
- ``jobs``      — ``Job`` and the bounded ``JobQueue`` between handlers and the model loop; the events it emits
- ``detok``     — incremental detokenizing and stop strings for streaming
- ``prefix``    — ``PrefixCache``: recent prompts kept in the KV cache so a shared prefix runs once
- ``metrics``   — counters and the Prometheus text of ``/metrics``
- ``worker``    — ``Worker``: the model loop (continuous batching, one budget machine per row)
- ``app``       — ``Server`` and ``create_app``: the FastAPI endpoints, SSE streaming, auth

Exported lazily (PEP 562), so ``engine.serve.options`` (the torch-free flags) imports neither torch nor FastAPI.
"""

from engine.lazy import lazy_exports

_EXPORTS = {
    "ServeOptions": "engine.serve.options",
    "Server": "engine.serve.app",
    "create_app": "engine.serve.app",
    "Worker": "engine.serve.worker",
    "JobQueue": "engine.serve.jobs",
    "PrefixCache": "engine.serve.prefix",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
