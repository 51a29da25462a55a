"""Benchmark: beam search and DVTS on the prefix-sharing engine vs the reference's re-prefill loop.

    ttscale bench search [--strategies beam dvts] [--ns 4 16] [--repeats 1] [--warmup 1] [--json]
    (or: python -m benchmarks.speed.search --json)

In one process on the embedded model, for each strategy (beam, dvts) and each N (4, 16), M = 4:
  (a) ttscale   :class:`engine.search.Searcher`: each prompt prefilled once, branches forked in the KV tree, all
                problems in one decode loop; the PRM scores only each new step (prefix cache)
  (b) baseline  :class:`benchmarks.speed.search_baseline.ReprefillSearch`: every step re-tokenises and re-prefills the
                whole text, the PRM re-scores whole prefixes, one problem at a time (REFERENCE §3)
Both use the same PRM (the policy itself under rlhflow, weights shared: no PRM weights exist offline), the same
selection code and T = 0.8 with the same seed. They search alike but do not draw the same samples, so generated
tokens are reported next to forward tokens (and forward tokens per generated token). Phases are timed apart:
policy (generation) and PRM (scoring). Timing is the shared harness's (``benchmarks/speed/harness.py``): at each
setting one untimed run of each competitor, then interleaved rounds. Each competitor times itself inside its round
(building the PRM and the searcher left out, as before), so ``wall_s`` and its phases come from the round whose own
wall time is fastest and ``wall_median_s`` is the median of those walls. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

from benchmarks import options
from benchmarks.speed import harness
from benchmarks.speed.search_baseline import ReprefillSearch
from engine.errors import TTScaleError
from engine.logits.sampling import SamplingConfig
from engine.models import load_model
from engine.search import ModelPRM, SearchConfig, Searcher

QUESTIONS = [
    "What is 12 * 13?", "If x + 3 = 10, what is x?", "What is the sum of the first ten positive integers?",
    "A rectangle is 7 cm long and 5 cm wide. What is its area?", "What is 15% of 80?", "What is 2 to the power of 10?",
]


class _ScoreTimer:
    """Adds the time of every ``prm.score`` call to ``seconds`` (the PRM phase), leaving the PRM otherwise as it is."""

    def __init__(self, prm):
        self.seconds, inner = 0.0, prm.score

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        prm.score = timed


def run_ours(model, tokenizer, config, sampling, questions) -> dict:
    """(a) One :class:`Searcher` run over all ``questions`` with a fresh PRM; returns its times and accounting."""
    prm = ModelPRM(model, tokenizer, "rlhflow")
    timer = _ScoreTimer(prm)
    searcher = Searcher(model, tokenizer, replace(config, batch_problems=len(questions)), prm=prm, sampling=sampling)
    t0 = time.perf_counter()
    results = searcher.search(questions)
    wall = time.perf_counter() - t0
    tree = results[0].tree
    prompts = sum(len(tree[p["root"]].tokens) for p in tree.problems)
    policy = sum(r.policy_forward_tokens for r in results)
    prm_tokens = sum(r.prm_forward_tokens for r in results)
    return {"wall_s": wall, "policy_s": wall - timer.seconds, "prm_s": timer.seconds, "policy_forward_tokens": policy,
            "prm_forward_tokens": prm_tokens, "forward_tokens": policy + prm_tokens, "tree_tokens": tree.tokens(),
            "generated_tokens": tree.tokens() - prompts, "peak_kv_bytes": results[0].peak_kv_bytes,
            "completions": sum(len(r.completions) for r in results), "answers": [r.answer for r in results]}


def run_baseline(model, tokenizer, config, sampling, questions) -> dict:
    """(b) The re-prefill baseline, one question at a time, with a PRM without cache; returns its times and accounting."""
    prm = ModelPRM(model, tokenizer, "rlhflow", max_cache_tokens=0)  # no prefix cache: whole prefixes re-scored
    timer = _ScoreTimer(prm)
    base = ReprefillSearch(model, tokenizer, config, prm, sampling)
    t0 = time.perf_counter()
    results = [base.search(q) for q in questions]  # one problem at a time, as the reference
    wall = time.perf_counter() - t0
    policy = sum(r.policy_forward_tokens for r in results)
    prm_tokens = sum(r.prm_forward_tokens for r in results)
    return {"wall_s": wall, "policy_s": wall - timer.seconds, "prm_s": timer.seconds, "policy_forward_tokens": policy,
            "prm_forward_tokens": prm_tokens, "forward_tokens": policy + prm_tokens,
            "generated_tokens": sum(r.generated_tokens for r in results), "peak_kv_bytes": max(r.peak_kv_bytes for r in results),
            "completions": sum(len(r.completions) for r in results), "generate_calls": sum(r.generate_calls for r in results)}


def _ratios(ours: dict, base: dict) -> dict:
    """Baseline over ttscale: forward tokens (all, policy, PRM, per generated token), wall time and peak KV."""
    per_gen = lambda r: r["forward_tokens"] / max(r["generated_tokens"], 1)  # noqa: E731
    return {
        "forward_tokens_baseline_over_ttscale": base["forward_tokens"] / ours["forward_tokens"],
        "policy_forward_tokens_baseline_over_ttscale": base["policy_forward_tokens"] / ours["policy_forward_tokens"],
        "prm_forward_tokens_baseline_over_ttscale": base["prm_forward_tokens"] / max(ours["prm_forward_tokens"], 1),
        "forward_tokens_per_generated_baseline_over_ttscale": per_gen(base) / per_gen(ours),
        "wall_baseline_over_ttscale": base["wall_s"] / ours["wall_s"],
        "peak_kv_baseline_over_ttscale": base["peak_kv_bytes"] / ours["peak_kv_bytes"],
    }


def bench(model="smollm2-135m", strategies=("beam", "dvts"), ns=(4, 16), beam_width: int = 4, problems: int = 2,
          max_steps: int = 4, max_step_tokens: int = 32, temperature: float = 0.8, seed: int = 0, threads: int | None = None,
          progress=None, repeats: int = 1, warmup: int = 1) -> dict:
    """Run both competitors for every strategy and N; returns the JSON envelope (see the module docstring).

    ``model`` is a name :func:`engine.models.load_model` takes, or an already loaded :class:`LoadedModel`.
    Refuses (``TTScaleError``) what :class:`SearchConfig` and :func:`harness.run_interleaved` refuse.
    """
    configs = {f"{s}_n{n}": SearchConfig(s, n=n, beam_width=beam_width, max_steps=max_steps, max_step_tokens=max_step_tokens)
               for s in strategies for n in ns}
    harness.set_threads(threads)
    lm = load_model(model) if isinstance(model, str) else model
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(problems)]
    sampling = SamplingConfig(temperature=temperature, seed=seed)
    figures = {}
    for key, cfg in configs.items():
        t = harness.run_interleaved({"ttscale": lambda cfg=cfg: run_ours(lm.model, lm.tokenizer, cfg, sampling, questions),
                                     "baseline": lambda cfg=cfg: run_baseline(lm.model, lm.tokenizer, cfg, sampling, questions)},
                                    repeats, warmup)
        rows = {}
        for name in ("ttscale", "baseline"):
            rows[name] = dict(t.fastest_result(name, key="wall_s"))
            rows[name]["wall_median_s"] = statistics.median(t.phase(name, "wall_s"))
        figures[key] = {**rows, **_ratios(rows["ttscale"], rows["baseline"])}
        if progress:
            progress(f"{cfg.strategy} N={cfg.n} done")
    config = {"model": model if isinstance(model, str) else lm.name, "strategies": list(strategies), "ns": list(ns),
              "beam_width": beam_width, "problems": problems, "questions": questions, "max_steps": max_steps, "max_step_tokens": max_step_tokens,
              "temperature": temperature, "seed": seed, "prm": "policy model under rlhflow (shared weights)",
              "agg": "last", "delimiter": "\\n\\n"}
    return harness.envelope("search", config, harness.device_info(lm.device), harness.timing_block(warmup, repeats), figures)


SPEC = options.SEARCH.spec
Options = options.SearchBenchOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`~benchmarks.options.SearchBenchOptions` and :class:`~benchmarks.options.TimingOptions`."""
    SPEC.add_to(p)


def print_table(result: dict, out=None) -> None:
    """One row per competitor and setting (fastest round), then the ratios."""
    out = out or sys.stdout  # read at call time: a redirected stdout is honoured
    print(f"{'run':>9} {'method':>9} {'wall s':>8} {'policy s':>8} {'PRM s':>7} {'policy fwd':>10} {'PRM fwd':>8} "
          f"{'generated':>9} {'peak KV MiB':>11}", file=out)
    for key, fig in result["figures"].items():
        for name in ("ttscale", "baseline"):
            r = fig[name]
            print(f"{key:>9} {name:>9} {r['wall_s']:8.1f} {r['policy_s']:8.1f} {r['prm_s']:7.1f} {r['policy_forward_tokens']:10d} "
                  f"{r['prm_forward_tokens']:8d} {r['generated_tokens']:9d} {r['peak_kv_bytes'] / 2**20:11.1f}", file=out)
        print(f"{'':>9} baseline/ttscale: forward tokens {fig['forward_tokens_baseline_over_ttscale']:.2f}x "
              f"(policy {fig['policy_forward_tokens_baseline_over_ttscale']:.2f}x, PRM {fig['prm_forward_tokens_baseline_over_ttscale']:.2f}x; "
              f"per generated token {fig['forward_tokens_per_generated_baseline_over_ttscale']:.2f}x), "
              f"wall {fig['wall_baseline_over_ttscale']:.2f}x, peak KV {fig['peak_kv_baseline_over_ttscale']:.2f}x", file=out)


def main(args) -> int:
    """``ttscale bench search``: validate the flags (before loading a model), run, print the table and the JSON line.

    Refuses a strategy other than beam or dvts, an N that :class:`SearchConfig` refuses (not a multiple of
    ``--beam-width``, say), ``--problems < 1`` and the harness's timing flags out of range, each with one sentence.
    """
    args = harness.namespace(args)
    for s in args.strategies:
        if s not in ("beam", "dvts"):
            raise TTScaleError(f"--strategies {s}: this benchmark compares beam and dvts; use those")
    for n in args.ns:
        SearchConfig(args.strategies[0], n=n, beam_width=args.beam_width, max_steps=args.max_steps, max_step_tokens=args.max_step_tokens)
    harness.at_least("--problems", args.problems, 1)
    harness.check_timing_args(args)
    say = None if args.json else (lambda msg: print(f"ttscale: {msg}", file=sys.stderr, flush=True))
    result = bench(args.model, tuple(args.strategies), tuple(args.ns), args.beam_width, args.problems, args.max_steps,
                   args.max_step_tokens, args.temperature, args.seed, args.threads, progress=say, repeats=args.repeats,
                   warmup=args.warmup)
    return harness.finish(result, args.json, print_table)


if __name__ == "__main__":
    sys.exit(harness.run_main(__doc__, add_arguments, main))
