"""Benchmark: ``ttscale serve`` under C concurrent streaming clients versus the same requests one at a time.

    ttscale bench serve [--model smollm2-135m] [--concurrency 1 --concurrency 8 --concurrency 32] [--requests 32] [--json]
    (or: python -m benchmarks.speed.serve --json)

One real server (``ttscale serve --port 0``, a subprocess, as users run it) gets the same ``--requests`` chat
requests at every level: greedy, mixed thinking budgets (``--budgets`` cycled), ``max_answer_tokens`` capped,
streamed with usage. A level sends them through C concurrent clients (``httpx2``, the HTTP client the ``openai``
package uses); C = 1 is the baseline, one request at a time. Per level: completion tokens per second over the
level's wall time, p50/p99 request latency and time to first token (the first thinking or answer delta).
Greedy rows get the same tokens batched as alone, so every level does the same work; ``same_tokens`` checks it
(total completion tokens equal to the baseline's). One untimed warm-up request first; ``--repeats`` runs every level
again, the order of levels alternating (the harness's interleaving); the fastest round of each level counts.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time

from benchmarks import options
from benchmarks.speed import harness
from engine.errors import TTScaleError

SPEC = options.SERVE.spec
START_TIMEOUT_S = 300


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`~benchmarks.options.ServeBenchOptions` and the timing flags."""
    SPEC.add_to(p)


class _Server:
    """``ttscale serve --port 0`` as a subprocess; ``url`` once it prints its listening line."""

    def __init__(self, model: str, threads: int | None, max_batch: int):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--model", model, "--served-model-name", "bench",
               "--max-batch", str(max_batch), "--max-queue", "1024"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.url, self.lines, ready = None, [], threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line)
                if "listening on http://" in line:
                    self.url = line.split("listening on ")[1].split()[0]
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or self.url is None:
            self.stop()
            raise TTScaleError("the server did not start: " + "".join(self.lines[-5:]).strip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def requests(n: int, budgets: tuple[int, ...], max_answer: int) -> list[dict]:
    """The request set: ``n`` different questions, greedy, budgets cycled."""
    return [{"model": "bench", "messages": [{"role": "user", "content": f"What is {k + 3} * {k + 7}?"}], "stream": True,
             "stream_options": {"include_usage": True}, "temperature": 0, "max_thinking_tokens": budgets[k % len(budgets)],
             "max_answer_tokens": max_answer} for k in range(n)]


async def _one(client, url: str, body: dict) -> dict:
    t0 = time.perf_counter()
    first, usage = None, None
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise TTScaleError(f"the server answered {r.status_code}: {(await r.aread())[:200]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for ch in chunk.get("choices", ()):
                d = ch.get("delta", {})
                if first is None and (d.get("reasoning_content") or d.get("content")):
                    first = time.perf_counter() - t0
    return {"latency_s": time.perf_counter() - t0, "ttft_s": first, "tokens": usage["completion_tokens"],
            "thinking": usage["thinking_tokens"]}


async def _level(url: str, bodies: list[dict], concurrency: int) -> dict:
    httpx2 = _http_client()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx2.Limits(max_connections=concurrency + 4)
    async with httpx2.AsyncClient(timeout=600, limits=limits) as client:
        async def gated(body):
            async with gate:
                return await _one(client, url, body)

        t0 = time.perf_counter()
        rows = await asyncio.gather(*(gated(b) for b in bodies))
        wall = time.perf_counter() - t0
    lat = sorted(r["latency_s"] for r in rows)
    ttft = sorted(r["ttft_s"] for r in rows if r["ttft_s"] is not None)
    tokens = sum(r["tokens"] for r in rows)
    return {"wall_s": wall, "completion_tokens": tokens, "tokens_per_s": tokens / wall,
            "latency_p50_s": statistics.median(lat), "latency_p99_s": _pct(lat, 99),
            "ttft_p50_s": statistics.median(ttft), "ttft_p99_s": _pct(ttft, 99),
            "thinking_tokens": [r["thinking"] for r in rows]}


def _http_client():
    """httpx2, the HTTP client the ``openai`` package uses; refuses its absence in one sentence."""
    try:
        import httpx2  # deferred: it comes with the `openai` package of the dev extra, not with ttscale itself
    except ImportError:
        raise TTScaleError("ttscale bench serve needs httpx2, the HTTP client of the openai package: "
                           "pip install openai (or pip install -e '.[dev]')") from None
    return httpx2


def _pct(sorted_values: list[float], p: float) -> float:
    """The p-th percentile by nearest rank."""
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def bench(model: str, levels: tuple[int, ...], n: int, budgets: tuple[int, ...], max_answer: int, repeats: int,
          warmup: int, threads: int | None) -> dict:
    """Start the server, warm it up, run every level ``repeats`` times (order alternating); the figures of each
    level's fastest round, and the ratios to the one-at-a-time baseline."""
    _http_client()  # refused before the server starts when the client is missing
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
    levels = tuple(dict.fromkeys((1,) + tuple(levels)))
    bodies = requests(n, budgets, max_answer)
    server = _Server(model, threads, max(levels))
    try:
        for _ in range(warmup):
            asyncio.run(_level(server.url, bodies[:1], 1))
        runs: dict[int, list[dict]] = {c: [] for c in levels}
        for r in range(repeats):
            for c in harness.round_order(list(levels), r):
                runs[c].append(asyncio.run(_level(server.url, bodies, c)))
                print(f"bench serve: C={c}: {runs[c][-1]['tokens_per_s']:.1f} tok/s", file=sys.stderr, flush=True)
    finally:
        server.stop()
    best = {c: max(rs, key=lambda x: x["tokens_per_s"]) for c, rs in runs.items()}
    base = best[1]
    figures = {}
    for c, b in best.items():
        figures[f"c{c}"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in b.items() if k != "thinking_tokens"}
        figures[f"c{c}"]["throughput_ratio"] = round(b["tokens_per_s"] / base["tokens_per_s"], 3)
        figures[f"c{c}"]["same_tokens"] = b["completion_tokens"] == base["completion_tokens"] and \
            b["thinking_tokens"] == base["thinking_tokens"]
    config = {"model": model, "concurrency": list(levels), "requests": n, "budgets": list(budgets),
              "max_answer_tokens": max_answer, "sampling": "greedy", "stream": True}
    device = {"type": "cpu", "threads": threads or os.cpu_count(), "cpu": harness.device_info("cpu")["cpu"]}
    timing = {**harness.timing_block(warmup, repeats), "statistic": "max tokens/s per level"}
    return harness.envelope("serve", config, device, timing, figures)


def print_table(result: dict, out=None) -> None:
    """One row per level: tokens/s, the ratio to one-at-a-time, latency and time to first token."""
    out = out or sys.stdout
    print(f"{'clients':>7} {'tok/s':>8} {'ratio':>6} {'p50 s':>7} {'p99 s':>7} {'ttft p50':>9} {'ttft p99':>9} same", file=out)
    for key, f in result["figures"].items():
        print(f"{key[1:]:>7} {f['tokens_per_s']:8.1f} {f['throughput_ratio']:6.2f} {f['latency_p50_s']:7.2f} "
              f"{f['latency_p99_s']:7.2f} {f['ttft_p50_s']:9.2f} {f['ttft_p99_s']:9.2f} {f['same_tokens']}", file=out)


def main(args) -> int:
    """``ttscale bench serve``: check the flags (before starting a server), run, print the table and the JSON line."""
    args = harness.namespace(args)
    harness.check_timing_args(args)
    result = bench(args.model, args.concurrency, args.requests, args.budgets, args.max_answer_tokens, args.repeats,
                   args.warmup, args.threads)
    return harness.finish(result, args.json, print_table)


if __name__ == "__main__":
    sys.exit(harness.run_main(__doc__, add_arguments, main))
