"""Requests as the model loop sees them, and the bounded queue between the HTTP handlers and that loop (torch-free).

A handler builds a :class:`Job` (prompt ids, budgets, sampling, limits) and :meth:`JobQueue.put` s it; the queue
refuses it with :class:`QueueFull` when ``max_queue`` jobs already wait, which the app answers with 429 and
``Retry-After`` instead of letting memory grow. The loop takes jobs with :meth:`JobQueue.take` when it has free
rows, and reports back through ``job.emit(event)``: the handler's sink (an asyncio queue, fed thread-safely).

Events, in order, for each choice ``index`` of a job:

    Delta(index, channel, text, logprobs)   channel "reasoning" (thinking) or "content" (the answer)
    Done(index, finish_reason, usage)       once per choice; usage is that choice's token counts
    Failed(message)                          the job could not run (the whole job ends)

A handler that loses its client calls :meth:`Job.cancel`; the loop frees the job's rows at its next step.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.errors import TTScaleError


class QueueFull(TTScaleError):
    """The server's queue holds ``max_queue`` jobs: answer 429 and let the client retry."""


@dataclass
class Delta:
    index: int
    channel: str             # "reasoning" or "content"
    text: str
    logprobs: list | None    # one entry per token this delta covers ({"token", "logprob", "bytes", "top_logprobs"})


@dataclass
class Done:
    index: int
    finish_reason: str       # OpenAI's: "stop" or "length"
    usage: dict              # this choice's counts (see worker._usage)
    detail: str              # the engine's own reason: stop, max_answer, length, stop_string, ...
    token_ids: list = field(default_factory=list)   # every generated id, forced ones included


@dataclass
class Failed:
    message: str


@dataclass
class Job:
    """One prompt's work: ``n`` rows that share its prefill. ``search`` set: a search request instead.

    ``emit`` is called from the model loop's thread; it must be thread-safe and must not block.
    """

    prompt_ids: list[int]
    n: int
    budget: object                     # BudgetConfig
    tokens: object                     # BudgetTokens for this job's format
    sampling: object                   # SamplingConfig
    max_tokens: int
    stop: tuple[str, ...]
    logprobs: bool
    top_logprobs: int
    emit: Callable[[object], None]
    search: object = None              # SearchConfig, for a search job
    search_prompt: str | None = None   # the question a search renders itself
    return_completions: bool = False
    min_answer_tokens: int = 0         # end of turn blocked until the answer has this many tokens
    created: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the loop to drop this job (its client went away); safe from any thread, idempotent."""
        self.cancelled.set()


class JobQueue:
    """Jobs waiting for rows: FIFO, bounded, thread-safe. The loop blocks in :meth:`wait` while nothing is to do."""

    def __init__(self, max_queue: int):
        if not isinstance(max_queue, int) or max_queue < 1:
            raise TTScaleError(f"max_queue must be a positive int, got {max_queue!r}")
        self.max_queue = max_queue
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self.closed = False

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, job: Job) -> None:
        """Queue a job; refuses (:class:`QueueFull`) when ``max_queue`` wait already, or after :meth:`close`."""
        with self._cond:
            if self.closed:
                raise QueueFull("the server is shutting down; retry against another instance")
            if len(self._jobs) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} requests waiting); retry shortly")
            self._jobs.append(job)
            self._cond.notify()

    def take(self, free_rows: int, idle: bool) -> list[Job]:
        """Jobs that fit in ``free_rows`` rows, in order (a job needing more rows than are free waits, and so does
        everything behind it, so that no job starves). Cancelled jobs are dropped. A search job is taken alone and only
        when ``idle`` (no row running), because it runs to completion on the loop's thread."""
        out = []
        with self._cond:
            while self._jobs:
                job = self._jobs[0]
                if job.cancelled.is_set():
                    self._jobs.popleft()
                    continue
                if job.search is not None:
                    if idle and not out:
                        out.append(self._jobs.popleft())
                    break
                if job.n > free_rows:
                    break
                free_rows -= job.n
                idle = False
                out.append(self._jobs.popleft())
        return out

    def wait(self, timeout: float) -> None:
        """Block until a job arrives (or ``timeout`` seconds pass, or the queue is closed)."""
        with self._cond:
            if not self._jobs and not self.closed:
                self._cond.wait(timeout)

    def close(self) -> list[Job]:
        """Refuse new jobs from now on; returns the jobs still waiting (the loop still runs them)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
            return list(self._jobs)
