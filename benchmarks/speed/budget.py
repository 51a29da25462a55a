"""Benchmark: budget forcing in one ``generate`` call vs plain ``generate`` vs s1's re-prefill loop.

    ttscale bench budget [--batch-sizes 1 16] [--num-ignore 4] [--repeats 3] [--json]
    (or: python -m benchmarks.speed.budget --json)

In one process on the same model and prompts, at each batch size:
  (a) plain      ``model.generate`` for exactly as many steps as (b) took (min_new_tokens = max_new_tokens);
  (b) ttscale    ``ThinkingEngine.generate`` with ``num_ignore`` continuations, one call, no re-prefill;
  (c) reference  s1's loop (REFERENCE §1): a new ``generate`` call per round that stops at the end tokens, the
                 whole prompt + thinking re-tokenised and re-sent with "Wait" appended, then an answer round.
Timing is the shared harness's (``benchmarks/speed/harness.py``): one untimed run of each competitor, then
interleaved rounds; ``wall_s`` is the fastest round, ``wall_median_s`` the median. Plain's prompts are tokenised
outside its timed call (as before), the reference's re-tokenising is part of its algorithm and timed.
Forward tokens count every position run through the model (padding included: it is computed). Re-prefilled
tokens are context positions computed again that an earlier call had already computed. Under greedy decoding
(b) and (c) follow the same algorithm, so their outputs are compared too. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import options
from benchmarks.speed import harness
from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig

QUESTIONS = [
    "How many r's are in the word strawberry?", "What is 12 times 13?", "Is 91 a prime number?",
    "What is the sum of the first ten positive integers?", "A train travels 60 km in 45 minutes. What is its speed in km/h?",
    "What is 2 to the power of 10?", "How many days are in a leap year?", "What is the square root of 144?",
    "If x + 3 = 10, what is x?", "What is 15% of 80?", "Name the largest planet in the solar system.",
    "What is 7 factorial?", "How many sides does a hexagon have?", "What is 1/4 + 1/2?",
    "What is the next prime after 13?", "Convert 3 hours to minutes.",
]


def run_ours(engine, prompts, budget) -> dict:
    """(b) One ``ThinkingEngine.generate`` call over all prompts; returns its token accounting and thinking texts."""
    results = engine.generate(prompts, budget, SamplingConfig(), batch_size=len(prompts))
    steps = max(len(r.token_ids) for r in results)
    B, prompt_len = len(prompts), max(r.prompt_tokens for r in results)
    useful = sum(len(r.token_ids) for r in results)
    return {"steps": steps, "generated_tokens": useful, "forward_tokens": B * prompt_len + B * (steps - 1),
            "reprefill_tokens": 0, "generate_calls": 1, "waits_injected": [r.waits_injected for r in results],
            "texts": [r.thinking for r in results]}


def encode_plain(engine, prompts) -> dict:
    """(a)'s inputs: the rendered prompts tokenised once, left-padded, outside the timed call."""
    texts = [engine.render(p) for p in prompts]
    return engine.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=engine.style.add_special_tokens)


def run_plain(engine, enc, steps: int) -> dict:
    """(a) Plain greedy ``model.generate`` for exactly ``steps`` new tokens over ``enc``; returns its accounting."""
    B, L = enc["input_ids"].shape
    out = engine.model.generate(**enc, do_sample=False, max_new_tokens=steps, min_new_tokens=steps,
                                pad_token_id=engine.tokenizer.pad_token_id)
    assert out.shape[1] - L == steps
    return {"steps": steps, "generated_tokens": B * steps, "forward_tokens": B * L + B * (steps - 1),
            "reprefill_tokens": 0, "generate_calls": 1}


def run_reference(engine, prompts, budget):
    """(c) s1's approach on transformers: one generate call per round, whole context re-tokenised and re-sent each time."""
    tok, model, fmt = engine.tokenizer, engine.model, engine.format
    stops = [tok.encode(fmt.think_end, add_special_tokens=False)[0]] + list(engine.budget_tokens(budget).end_ids)
    contexts = [engine.render(p) for p in prompts]
    thinking = ["" for _ in prompts]
    used = [0] * len(prompts)
    capped = [False] * len(prompts)
    stats = {"forward_tokens": 0, "reprefill_tokens": 0, "generate_calls": 0, "generated_tokens": 0}
    computed_before = [0] * len(prompts)  # context positions some earlier call already computed

    def call(rows, suffixes, max_new, eos):
        texts = [contexts[i] + thinking[i] + suffixes[j] for j, i in enumerate(rows)]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=engine.style.add_special_tokens)
        out = model.generate(**enc, do_sample=False, max_new_tokens=max_new, eos_token_id=eos, pad_token_id=tok.pad_token_id)
        B, L = enc["input_ids"].shape
        stats["generate_calls"] += 1
        stats["forward_tokens"] += B * L + B * (out.shape[1] - L - 1)
        new = []
        for j, i in enumerate(rows):
            n_ctx = int(enc["attention_mask"][j].sum())
            stats["reprefill_tokens"] += min(computed_before[i], n_ctx)
            gen = out[j, L:].tolist()
            hit = next((k for k, t in enumerate(gen) if t in eos), None)
            body = gen if hit is None else gen[:hit]
            stats["generated_tokens"] += len(body)
            computed_before[i] = n_ctx + len(body)
            new.append((body, hit is not None))
        return new

    def rounds():
        active = list(range(len(prompts)))
        for r in range(budget.num_ignore + 1):
            if not active:
                break
            limit = max(budget.max_thinking_tokens - min(used[i] for i in active), 1)
            outs = call(active, [""] * len(active), limit, stops)
            still = []
            for i, (body, stopped) in zip(active, outs):
                body = body[: budget.max_thinking_tokens - used[i]]
                thinking[i] += tok.decode(body)
                used[i] += len(body)
                if used[i] >= budget.max_thinking_tokens:
                    capped[i] = True
                elif stopped and r < budget.num_ignore:
                    thinking[i] += budget.ignore_strs[0]  # s1: prompt += output + "Wait"
                    used[i] += len(tok.encode(budget.ignore_strs[0], add_special_tokens=False))
                    still.append(i)
            active = still
        rows = list(range(len(prompts)))
        suffix = [("\n" + fmt.think_end + "\n" + budget.final_answer_str) if capped[i] else fmt.think_end for i in rows]
        call(rows, suffix, budget.max_answer_tokens, list(engine.budget_tokens(budget).end_ids))

    rounds()
    return {**stats, "texts": thinking}


def competitors(engine, prompts, budget) -> dict:
    """The three competitors over ``prompts`` as zero-argument callables, ttscale first.

    Plain runs as many steps as ttscale last took (greedy: the same every time); ttscale runs first in the
    warm-up and in round 0, so plain always knows the count. Plain's inputs are tokenised here, untimed.
    """
    enc, steps = encode_plain(engine, prompts), {}

    def ours():
        out = run_ours(engine, prompts, budget)
        steps["steps"] = out["steps"]
        return out

    return {"ttscale": ours, "plain": lambda: run_plain(engine, enc, steps["steps"]),
            "reference": lambda: run_reference(engine, prompts, budget)}


def bench(model: str = "smollm2-135m", batch_sizes=(1, 16), num_ignore: int = 4, max_thinking_tokens: int = 256,
          max_answer_tokens: int = 32, threads: int | None = None, repeats: int = 3, warmup: int = 1) -> dict:
    """Run the three competitors at each batch size; returns the JSON envelope (see the module docstring).

    Refuses (``TTScaleError``) what :class:`BudgetConfig` and :func:`harness.run_interleaved` refuse.
    """
    harness.set_threads(threads)
    budget = BudgetConfig(num_ignore=num_ignore, max_thinking_tokens=max_thinking_tokens, max_answer_tokens=max_answer_tokens)
    engine = ThinkingEngine.from_pretrained(model, format="s1")
    figures = {}
    for B in batch_sizes:
        prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(B)]
        t = harness.run_interleaved(competitors(engine, prompts, budget), repeats, warmup)
        rows = {name: t.last(name) for name in ("plain", "ttscale", "reference")}
        ours_r, plain, ref = rows["ttscale"], rows["plain"], rows["reference"]
        same = sum(a == b for a, b in zip(ours_r.pop("texts"), ref.pop("texts")))
        for name, r in rows.items():
            r["wall_s"], r["wall_median_s"] = t.fastest(name), t.median(name)
            r["tokens_per_s"] = r["generated_tokens"] / r["wall_s"]
            r["forward_tokens_per_s"] = r["forward_tokens"] / r["wall_s"]
        figures[f"batch{B}"] = {
            "plain": plain, "ttscale": ours_r, "reference": ref,
            # Same number of decode steps as plain generate: time per step is the fair comparison.
            "throughput_vs_plain": plain["wall_s"] / ours_r["wall_s"],
            "speedup_vs_reference": ref["wall_s"] / ours_r["wall_s"],
            "forward_tokens_ratio_reference_over_ttscale": ref["forward_tokens"] / ours_r["forward_tokens"],
            "greedy_thinking_identical_rows": f"{same}/{B}",
        }
    config = {"model": model, "batch_sizes": list(batch_sizes), "num_ignore": num_ignore, "max_thinking_tokens": max_thinking_tokens,
              "max_answer_tokens": max_answer_tokens, "decoding": "greedy", "format": "s1"}
    return harness.envelope("budget", config, harness.device_info(engine.model.device),
                            harness.timing_block(warmup, repeats), figures)


SPEC = options.BUDGET.spec
Options = options.BudgetOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`~benchmarks.options.BudgetOptions` and :class:`~benchmarks.options.TimingOptions`."""
    SPEC.add_to(p)


def print_table(result: dict, out=None) -> None:
    """One row per batch size and competitor (fastest round), then the ratios."""
    out = out or sys.stdout  # read at call time: a redirected stdout is honoured
    print(f"{'batch':>5} {'method':>10} {'wall s':>8} {'tok/s':>8} {'fwd tok':>8} {'re-prefill':>10} {'calls':>5}", file=out)
    for key, fig in result["figures"].items():
        for name in ("plain", "ttscale", "reference"):
            r = fig[name]
            print(f"{key[5:]:>5} {name:>10} {r['wall_s']:8.2f} {r['tokens_per_s']:8.1f} {r['forward_tokens']:8d} "
                  f"{r['reprefill_tokens']:10d} {r['generate_calls']:5d}", file=out)
        print(f"      ttscale/plain throughput {fig['throughput_vs_plain']:.3f}; speed-up vs reference "
              f"{fig['speedup_vs_reference']:.2f}x; reference computes {fig['forward_tokens_ratio_reference_over_ttscale']:.2f}x "
              f"the forward tokens; identical greedy thinking {fig['greedy_thinking_identical_rows']}", file=out)


def main(args) -> int:
    """``ttscale bench budget``: validate the flags (before loading a model), run, print the table and the JSON line.

    Refuses ``--num-ignore < 0``, ``--max-thinking-tokens``, ``--max-answer-tokens`` or a batch size below 1, and
    the harness's timing flags out of range, each with one sentence.
    """
    args = harness.namespace(args)
    harness.at_least("--num-ignore", args.num_ignore, 0)
    harness.at_least("--max-thinking-tokens", args.max_thinking_tokens, 1)
    harness.at_least("--max-answer-tokens", args.max_answer_tokens, 1)
    if not args.batch_sizes:
        raise TTScaleError("--batch-sizes is empty; give at least one batch size")
    for b in args.batch_sizes:
        harness.at_least("--batch-sizes", b, 1)
    harness.check_timing_args(args)
    result = bench(args.model, tuple(args.batch_sizes), args.num_ignore, args.max_thinking_tokens, args.max_answer_tokens,
                   args.threads, args.repeats, args.warmup)
    return harness.finish(result, args.json, print_table)


if __name__ == "__main__":
    sys.exit(harness.run_main(__doc__, add_arguments, main))
