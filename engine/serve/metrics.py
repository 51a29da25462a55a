"""The server's counters, and their Prometheus text exposition for ``GET /metrics`` (torch-free).

The model loop writes gauges and counters (plain attributes: single writes of Python ints are atomic); the app
reads them. Tokens per second is measured over a sliding window of the last ``WINDOW_S`` seconds; time to first
token and request latency are histograms with Prometheus' cumulative buckets.
"""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_S = 10.0
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Histogram:
    """Counts of observations per upper bound (cumulative, as Prometheus wants), their sum and count."""

    def __init__(self, buckets=BUCKETS):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum, self.count = 0.0, 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self.sum += value
            self.count += 1
            for i, b in enumerate(self.buckets):
                if value <= b:
                    self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        with self._lock:
            out = [f'{name}_bucket{{le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts)]
            out += [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.sum:.6f}", f"{name}_count {self.count}"]
        return out


class Metrics:
    """What ``/metrics`` reports. The loop sets ``queue_depth``, ``running``, ``kv_tokens`` and counts tokens; the app
    counts requests by status and observes latencies."""

    def __init__(self):
        self.queue_depth = 0
        self.running = 0
        self.kv_tokens = 0
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self.prefix_reused = 0
        self.rows_finished = 0
        self.cancelled_rows = 0
        self.requests: dict[str, int] = {}
        self.ttft = Histogram()
        self.latency = Histogram()
        self._window: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def tokens(self, n: int) -> None:
        """Count ``n`` tokens generated now."""
        now = time.monotonic()
        with self._lock:
            self.generated_tokens += n
            self._window.append((now, n))
            while self._window and self._window[0][0] < now - WINDOW_S:
                self._window.popleft()

    def tokens_per_second(self) -> float:
        """Generated tokens per second over the last ``WINDOW_S`` seconds."""
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0][0] < now - WINDOW_S:
                self._window.popleft()
            return sum(n for _, n in self._window) / WINDOW_S

    def first_token(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def request(self, status: int, seconds: float | None = None) -> None:
        """Count one finished request by HTTP status (and observe its latency when it ran)."""
        with self._lock:
            self.requests[str(status)] = self.requests.get(str(status), 0) + 1
        if seconds is not None:
            self.latency.observe(seconds)

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        g = [("ttscale_queue_depth", "gauge", "requests waiting for a row", self.queue_depth),
             ("ttscale_running_rows", "gauge", "rows decoding now", self.running),
             ("ttscale_kv_cache_tokens", "gauge", "distinct tokens held in the KV cache", self.kv_tokens),
             ("ttscale_tokens_per_second", "gauge", f"generated tokens per second over the last {WINDOW_S:g} s",
              round(self.tokens_per_second(), 3)),
             ("ttscale_generated_tokens_total", "counter", "tokens generated", self.generated_tokens),
             ("ttscale_prompt_tokens_total", "counter", "prompt tokens admitted", self.prompt_tokens),
             ("ttscale_prefix_reused_tokens_total", "counter", "prompt tokens served from the prefix cache", self.prefix_reused),
             ("ttscale_cancelled_rows_total", "counter", "rows freed because their client left", self.cancelled_rows)]
        out = []
        for name, kind, help_, value in g:
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}"]
        out += ["# HELP ttscale_requests_total requests answered, by HTTP status", "# TYPE ttscale_requests_total counter"]
        with self._lock:
            out += [f'ttscale_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
        for name, h, help_ in (("ttscale_time_to_first_token_seconds", self.ttft, "time from arrival to the first token"),
                               ("ttscale_request_latency_seconds", self.latency, "time from arrival to the last token")):
            out += [f"# HELP {name} {help_}", f"# TYPE {name} histogram"] + h.lines(name)
        return "\n".join(out) + "\n"
