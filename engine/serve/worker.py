"""The model loop: one thread owns the model and decodes every running request together (continuous batching).

Each iteration of :meth:`Worker.step`:

    1. admit    take queued jobs while rows are free (``max_batch``); prefill each prompt once through the
                prefix cache (a shared prefix is not recomputed), fork it into the job's ``n`` rows
    2. choose   logits of every running row (B, V) -> the row's warpers (temperature, top-p) -> its budget machine
                (force a token / block the end tokens / nothing; end tokens also blocked until the answer has
                ``min_answer_tokens``) -> argmax or a draw from the row's own generator
    3. emit     the token's text to its channel (thinking -> ``reasoning``, answer -> ``content``; the delimiter and
                end tokens to neither), its logprob under the model's raw distribution, and ``Done`` for rows that
                ended: an end token, ``max_tokens``, a stop string, or the job cancelled (its client left)
    4. decode   one ``KVCacheManager.decode`` for every row that goes on; finished rows are released at once

Rows are independent: each has its own budget machine (s1 budget forcing, ``engine/logits/budget_state.py``) and,
when sampling, its own ``torch.Generator`` seeded from the request, so what a row gets does not depend on what
else shares the step; a greedy request gives the same tokens batched as alone (up to float round-off in the
batched forward, which the tests check does not change tokens).

A search job (the ``search`` field) runs to completion on this thread with :class:`engine.search.Searcher` when
no other row is running; requests arriving meanwhile wait in the queue.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback

import torch

from engine.kv_cache import KVCacheManager
from engine.logits.budget import ANSWER, ANSWER_PREFIX, DONE, THINKING, BudgetMachine, end_checks
from engine.logits.warpers import warpers
from engine.serve.detok import Detokenizer, StopWatch
from engine.serve.jobs import Delta, Done, Failed, Job, JobQueue
from engine.serve.metrics import Metrics
from engine.serve.prefix import PrefixCache

log = logging.getLogger("ttscale.serve")

# The machine's finish reasons -> OpenAI's (a cap on the answer is a length limit; an end inside thinking a stop).
FINISH = {"stop": "stop", "stop_in_thinking": "stop", "max_answer": "length", "length": "length", "stop_string": "stop"}


class _Row:
    """One choice of one job: its branch, budget machine, sampler state and the text released so far."""

    __slots__ = ("job", "index", "branch", "machine", "end_index", "greedy", "gen", "warp_key", "generated", "text",
                 "stops", "injected", "done")

    def __init__(self, job: Job, index: int, branch, tokenizer, device):
        self.job, self.index, self.branch = job, index, branch
        self.machine = BudgetMachine(job.budget, job.tokens)
        self.end_index = torch.tensor(list(job.tokens.end_set), device=device)  # (E,) built once, read every step
        self.greedy = job.sampling.greedy
        self.gen = None
        if not self.greedy:
            seed = job.sampling.seed
            self.gen = torch.Generator(device=device)
            # seed + index: the choices of one request differ, and each is repeatable alone or batched
            self.gen.manual_seed(seed + index if seed is not None else int(torch.randint(0, 2**62, (1,))))
        self.warp_key = (job.sampling.temperature, job.sampling.top_p, job.sampling.top_k)
        self.generated = 0
        self.text = {"reasoning": Detokenizer(tokenizer), "content": Detokenizer(tokenizer)}
        self.stops = StopWatch(job.stop)
        self.injected = 0
        self.done = False


class Worker:
    """Owns the model, a :class:`KVCacheManager` and a :class:`PrefixCache`; runs :meth:`run` on its own thread.

    ``max_batch`` bounds the rows decoded together; ``queue`` is shared with the app. ``searcher_for(config)``
    returns a :class:`engine.search.Searcher` for a search job (built by the app, which knows the PRM).
    Refuses nothing itself: requests are checked by ``engine.serve.protocol`` before they are queued.
    """

    def __init__(self, model, tokenizer, queue: JobQueue, metrics: Metrics, max_batch: int = 32,
                 prefix_entries: int = 8, searcher_for=None):
        self.model, self.tokenizer, self.queue, self.metrics = model, tokenizer, queue, metrics
        self.max_batch = max_batch
        self.manager = KVCacheManager(model)
        self.prefix = PrefixCache(self.manager, prefix_entries)
        self.searcher_for = searcher_for
        self.device = next(model.parameters()).device
        self.rows: list[_Row] = []
        self._warpers: dict = {}
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the loop thread."""
        self.thread = threading.Thread(target=self.run, name="ttscale-model-loop", daemon=True)
        self.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Close the queue, let running and queued jobs finish, then end the loop (waits up to ``timeout`` s)."""
        self.queue.close()
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self) -> None:
        """The loop: step while there is work; sleep on the queue otherwise; exit once stopped and drained."""
        with torch.inference_mode():
            while True:
                if not self.rows and not len(self.queue):
                    if self._stop.is_set():
                        break
                    self.queue.wait(0.2)
                    continue
                try:
                    self.step()
                except Exception as e:  # a bug must not kill the server: fail the rows, keep serving
                    log.error("model loop step failed: %s", traceback.format_exc())
                    for r in self.rows:
                        self._finish_failed(r, f"the model loop failed: {type(e).__name__}: {e}")
                    self.rows = []
        self.prefix.clear()

    # ------------------------------------------------------------------ one iteration

    def step(self) -> None:
        """One iteration of the module docstring's loop (admit, choose, emit, decode)."""
        self._drop_cancelled()
        self._admit()
        if not self.rows:
            return
        rows = self.rows
        logits = torch.stack([r.branch.logits for r in rows]).float()  # (B, V)
        tokens, logprobs = self._choose(rows, logits)
        go_on, feed = [], []
        for r, t, lp in zip(rows, tokens, logprobs):
            self._emit_token(r, t, lp)
            if not r.done:
                go_on.append(r)
                feed.append(t)
        for r in rows:
            if r.done:
                self.manager.release(r.branch)
        self.rows = go_on
        self.metrics.tokens(len(rows))
        if go_on:
            self.manager.decode([r.branch for r in go_on], feed)
        self.metrics.running = len(self.rows)
        self.metrics.kv_tokens = self.manager.stats().tree_tokens

    def _drop_cancelled(self) -> None:
        keep = []
        for r in self.rows:
            if r.job.cancelled.is_set():
                self.manager.release(r.branch)
                self.metrics.cancelled_rows += 1
            else:
                keep.append(r)
        self.rows = keep
        self.metrics.running = len(keep)

    def _admit(self) -> None:
        jobs = self.queue.take(self.max_batch - len(self.rows), idle=not self.rows)
        self.metrics.queue_depth = len(self.queue)
        if not jobs:
            return
        if jobs[0].search is not None:
            self._run_search(jobs[0])
            return
        starts, pending = [], []
        for job in jobs:
            branch, rest = self.prefix.start(job.prompt_ids)
            if branch is None:
                branch, rest = self.manager.prefill(job.prompt_ids), []
            starts.append(branch)
            if rest:
                pending.append((branch, rest))
        if pending:  # every prompt's uncached part in one forward
            self.manager.decode([b for b, _ in pending], [t for _, t in pending])
        for job, branch in zip(jobs, starts):
            self.prefix.remember(job.prompt_ids, branch)
            kids = self.manager.fork(branch, job.n)
            self.manager.release(branch)
            self.rows.extend(_Row(job, i, kid, self.tokenizer, self.device) for i, kid in enumerate(kids))
            self.metrics.prompt_tokens += len(job.prompt_ids)
        self.metrics.prefix_reused = self.prefix.reused_tokens

    def _choose(self, rows: list[_Row], logits: torch.Tensor) -> tuple[list[int], list]:
        """(B, V) logits -> one token per row, and per row its logprob entry (None unless the job asked)."""
        scores = logits
        groups: dict = {}
        for i, r in enumerate(rows):
            if not r.greedy:
                groups.setdefault(r.warp_key, []).append(i)
        for key, idx in groups.items():  # rows sharing temperature/top-p are warped together
            ws = self._warpers.get(key)
            if ws is None:
                ws = self._warpers[key] = warpers(rows[idx[0]].job.sampling)
            if ws:
                at = torch.tensor(idx, device=scores.device)
                part = scores.index_select(0, at)
                dummy = torch.zeros((len(idx), 1), dtype=torch.long, device=scores.device)  # warpers ignore input_ids
                for w in ws:
                    part = w(dummy, part)
                scores = scores.index_copy(0, at, part)
        chosen = []
        for i, r in enumerate(rows):
            m = r.machine
            row = scores[i: i + 1]                                                  # (1, V)
            end_index = r.end_index
            check = None
            if m.needs_end_check():
                lse = None if r.greedy else torch.logsumexp(row, dim=-1)
                [check] = end_checks(row, lse, end_index, r.greedy, r.gen)
            action = m.decide(check)
            if action.force is not None:
                chosen.append(action.force)
                continue
            if action.block_end or (m.phase == ANSWER and m.state.answer_tokens < r.job.min_answer_tokens):
                row = row.clone()
                row[0, end_index] = float("-inf")
            if r.greedy:
                chosen.append(int(row.argmax(-1)))
            else:
                probs = torch.softmax(row, dim=-1)
                chosen.append(int(torch.multinomial(probs, 1, generator=r.gen)))
        return chosen, self._logprobs(rows, logits, chosen)

    def _logprobs(self, rows: list[_Row], logits: torch.Tensor, chosen: list[int]) -> list:
        want = [i for i, r in enumerate(rows) if r.job.logprobs]
        out = [None] * len(rows)
        if not want:
            return out
        at = torch.tensor(want, device=logits.device)
        lp = torch.log_softmax(logits.index_select(0, at), dim=-1)                # (W, V): the model's distribution
        k = max(rows[i].job.top_logprobs for i in want)
        top = torch.topk(lp, k, dim=-1) if k else None
        for j, i in enumerate(want):
            t = chosen[i]
            entry = {"token_id": t, "logprob": float(lp[j, t]), "top": []}
            n = rows[i].job.top_logprobs
            if n:
                entry["top"] = list(zip(top.indices[j, :n].tolist(), top.values[j, :n].tolist()))
            out[i] = entry
        return out

    # ------------------------------------------------------------------ emitting

    def _emit_token(self, r: _Row, token: int, lp: dict | None) -> None:
        job, m = r.job, r.machine
        m.observe(token)
        r.generated += 1
        if job.first_token is None:
            job.first_token = time.monotonic()
            self.metrics.first_token(job.first_token - job.created)
        _, source, reason, category, _, _ = m.state.tokens[-1]
        if source == "forced" and reason in ("ignore", "min_budget"):
            r.injected += 1
        channel = "reasoning" if category == THINKING else "content" if category in (ANSWER, ANSWER_PREFIX) else None
        if channel is not None:
            delta = r.text[channel].add(token)
            if channel == "content":
                delta = r.stops.feed(delta)
            if delta or lp is not None:
                job.emit(Delta(r.index, channel, delta, [self._entry(token, lp)] if lp is not None else None))
            if r.stops.stopped:
                return self._finish(r, "stop_string")
        if m.phase == DONE:
            return self._finish(r, m.state.finish_reason or "stop")
        if r.generated >= job.max_tokens:
            return self._finish(r, "length")

    def _entry(self, token: int, lp: dict) -> dict:
        text = self.tokenizer.decode([token], skip_special_tokens=False)
        return {"token": text, "logprob": lp["logprob"], "bytes": list(text.encode("utf-8")),
                "top_logprobs": [{"token": (s := self.tokenizer.decode([t], skip_special_tokens=False)),
                                  "logprob": v, "bytes": list(s.encode("utf-8"))} for t, v in lp["top"]]}

    def _finish(self, r: _Row, reason: str) -> None:
        for channel in ("reasoning", "content"):
            rest = r.text[channel].flush()
            if channel == "content":
                rest = r.stops.feed(rest, final=True)
            if rest:
                r.job.emit(Delta(r.index, channel, rest, None))
        r.done = True
        ids = [t[0] for t in r.machine.state.tokens]
        r.job.emit(Done(r.index, FINISH.get(reason, "stop"), self._usage(r), reason, ids))
        self.metrics.rows_finished += 1

    def _usage(self, r: _Row) -> dict:
        st = r.machine.state
        return {"completion_tokens": r.generated, "thinking_tokens": st.thinking_tokens,
                "answer_tokens": st.answer_tokens, "forced_tokens": st.forced_tokens,
                "injected_tokens": r.injected, "continuations": st.injections}

    def _finish_failed(self, r: _Row, message: str) -> None:
        if r.branch.alive:
            self.manager.release(r.branch)
        r.job.emit(Failed(message))

    # ------------------------------------------------------------------ search

    def _run_search(self, job: Job) -> None:
        """Run a search job to completion here (nothing else runs meanwhile) and emit its one choice."""
        try:
            searcher = self.searcher_for(job)
            t0 = time.monotonic()
            [result] = searcher.search(job.search_prompt)
            job.first_token = time.monotonic()
            self.metrics.first_token(job.first_token - job.created)
            job.emit(("search", result, time.monotonic() - t0))
            self.metrics.tokens(sum(c.tokens for c in result.completions) if result.completions else 0)
        except Exception as e:
            log.error("search failed: %s", traceback.format_exc())
            job.emit(Failed(f"the search failed: {type(e).__name__}: {e}"))
