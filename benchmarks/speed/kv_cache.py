"""Benchmark: tree cache versus a DynamicCache batch that holds one copy of the prompt per row.

    ttscale bench kv-cache [--model smollm2-135m] [--n 16] [--prompt 200] [--steps 32] [--repeats 3] [--json]
    (or: python -m benchmarks.speed.kv_cache --json)

Both competitors get the same prompt and the same pre-drawn token per row and step, so they do identical model
work; only the cache differs:
  (a) dynamic  what plain transformers offers (REFERENCE §5): prefill once, ``batch_repeat_interleave(n)``, then
               decode all rows together; the cache holds n x (prompt + steps) positions
  (b) tree     :class:`engine.kv_cache.KVCacheManager`: prefill once, ``fork(n)`` without copying, decode the
               branches together; the tree holds prompt + n x steps positions
Phases (prefill, per decode step) are timed inside each round; timing is the shared harness's
(``benchmarks/speed/harness.py``): one untimed run of each, interleaved rounds, the fastest round of each phase
reported with the median beside it. ``kv_bytes_ratio`` is measured; ``kv_bytes_ratio_predicted`` is what the token
counts say, n (P + S) / (P + n S). The two caches' next-token logits (after the prompt and after the last step)
are compared too. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from transformers import DynamicCache

from benchmarks import options
from benchmarks.speed import harness
from engine.errors import TTScaleError
from engine.kv_cache.compat import cache_kwargs
from engine.kv_cache.manager import KVCacheManager
from engine.models import load_model


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a phase's clock reads its own work (nothing on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_dynamic(model, prompt: list[int], feed: torch.Tensor) -> dict:
    """(a) Prefill ``prompt`` once into a DynamicCache, copy it to N rows, decode ``feed`` (N, S) one step at a time.

    Returns phase times, the KV bytes the cache holds at the end, and the logits after the prompt (V,) and after
    the last step (N, V).
    """
    n, steps = feed.shape
    device = next(model.parameters()).device
    feed = feed.to(device)
    cache = DynamicCache(config=model.config)
    with_cache = cache_kwargs(model, cache)  # read once, outside the timed loop
    with torch.no_grad():
        t0 = time.perf_counter()
        first = model(input_ids=torch.tensor([prompt], device=device), logits_to_keep=1, **with_cache).logits[0, -1]
        _sync(device)
        t1 = time.perf_counter()
        cache.batch_repeat_interleave(n)  # one copy of the prompt per row
        for s in range(steps):
            mask = torch.ones(n, len(prompt) + s + 1, dtype=torch.long, device=device)
            last = model(input_ids=feed[:, s: s + 1], attention_mask=mask, logits_to_keep=1, **with_cache).logits[:, -1]
        _sync(device)
        t2 = time.perf_counter()
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return {"prefill_s": t1 - t0, "step_s": (t2 - t1) / steps, "kv_bytes": held, "cached_tokens": n * (len(prompt) + steps),
            "prefill_logits": first, "last_logits": last}


def run_tree(model, prompt: list[int], feed: torch.Tensor) -> dict:
    """(b) Prefill ``prompt`` once into a :class:`KVCacheManager`, fork N branches, decode ``feed`` (N, S) together.

    Returns phase times, the KV bytes the tree stores at the end (and the pool reserved), its token counts, and the
    logits after the prompt (V,) and after the last step (N, V). Every branch is released before it returns.
    """
    n, steps = feed.shape
    device = next(model.parameters()).device
    mgr = KVCacheManager(model, self_check=False)
    t0 = time.perf_counter()
    root = mgr.prefill(prompt)
    _sync(device)
    t1 = time.perf_counter()
    kids = mgr.fork(root, n)
    first = root.logits
    mgr.release(root)
    for s in range(steps):
        last = mgr.decode(kids, feed[:, s])
    _sync(device)
    t2 = time.perf_counter()
    st = mgr.stats()
    out = {"prefill_s": t1 - t0, "step_s": (t2 - t1) / steps, "kv_bytes": st.memory_bytes, "reserved_bytes": st.reserved_bytes,
           "tree_tokens": st.tree_tokens, "forward_tokens": st.forward_tokens, "prefill_logits": first, "last_logits": last}
    mgr.release(kids)
    return out


def make_inputs(model, n: int, prompt_len: int, steps: int, seed: int = 0) -> tuple[list[int], torch.Tensor]:
    """A random prompt of ``prompt_len`` ids and the (N, S) token each row is fed at each step, drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.get_output_embeddings().weight.shape[0]
    prompt = torch.randint(0, vocab, (prompt_len,), generator=g).tolist()
    feed = torch.randint(0, vocab, (n, steps), generator=g)  # (N, S)
    return prompt, feed


def _compare(a: dict, b: dict) -> dict:
    """How far two competitors' logits are apart, and on how many rows their next tokens agree."""
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in ("prefill_logits", "last_logits"))
    same = int((a["last_logits"].argmax(-1) == b["last_logits"].argmax(-1)).sum())
    same_first = bool(a["prefill_logits"].argmax() == b["prefill_logits"].argmax())
    return {"max_abs_logit_diff": diff, "next_token_identical_rows": f"{same}/{a['last_logits'].shape[0]}",
            "prefill_next_token_identical": same_first}


def bench(model="smollm2-135m", n: int = 16, prompt_len: int = 200, steps: int = 32, repeats: int = 3, warmup: int = 1,
          seed: int = 0, threads: int | None = None) -> dict:
    """Measure both caches on the same inputs; returns the JSON envelope (see the module docstring).

    ``model`` is a name :func:`engine.models.load_model` takes, or an already built causal LM (``nn.Module``).
    Refuses ``n``, ``prompt_len`` or ``steps`` below 1 and a prompt + steps longer than the model's positions.
    """
    for flag, value in (("--n", n), ("--prompt", prompt_len), ("--steps", steps)):
        harness.at_least(flag, value, 1)
    harness.set_threads(threads)
    if isinstance(model, str):
        name, lm = model, load_model(model).model
    else:
        name, lm = getattr(model.config, "_name_or_path", "") or type(model).__name__, model
    limit = getattr(lm.config, "max_position_embeddings", None)
    if limit is not None and prompt_len + steps > limit:
        raise TTScaleError(f"--prompt {prompt_len} plus --steps {steps} exceeds the model's {limit} positions; ask for fewer")
    prompt, feed = make_inputs(lm, n, prompt_len, steps, seed)
    t = harness.run_interleaved({"dynamic": lambda: run_dynamic(lm, prompt, feed), "tree": lambda: run_tree(lm, prompt, feed)},
                                repeats, warmup)
    agree = _compare(t.last("dynamic"), t.last("tree"))
    rows = {}
    for comp in ("dynamic", "tree"):
        r = {k: v for k, v in t.last(comp).items() if not k.endswith("_logits")}
        for phase in ("prefill_s", "step_s"):
            runs = t.phase(comp, phase)
            r[phase], r[phase.replace("_s", "_median_s")] = min(runs), statistics.median(runs)
        r["wall_s"], r["wall_median_s"] = t.fastest(comp), t.median(comp)
        rows[comp] = r
    dyn, tree = rows["dynamic"], rows["tree"]
    figures = {
        "dynamic": dyn, "tree": tree,
        "kv_bytes_ratio": dyn["kv_bytes"] / tree["kv_bytes"],
        "kv_bytes_ratio_predicted": n * (prompt_len + steps) / (prompt_len + n * steps),
        "step_time_ratio_tree_over_dynamic": tree["step_s"] / dyn["step_s"],
        "prefill_time_ratio_tree_over_dynamic": tree["prefill_s"] / dyn["prefill_s"],
        **agree,
    }
    config = {"model": name, "n": n, "prompt_tokens": prompt_len, "steps": steps, "seed": seed,
              "feed": "random prompt and pre-drawn tokens, the same for both caches"}
    return harness.envelope("kv-cache", config, harness.device_info(next(lm.parameters()).device),
                            harness.timing_block(warmup, repeats), figures)


SPEC = options.KV_CACHE.spec
Options = options.KVCacheOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`~benchmarks.options.KVCacheOptions` and :class:`~benchmarks.options.TimingOptions`."""
    SPEC.add_to(p)


def print_table(result: dict, out=None) -> None:
    """One row per cache (fastest round of each phase), then the ratios and the logits check."""
    out = out or sys.stdout  # read at call time: a redirected stdout is honoured
    f = result["figures"]
    print(f"{'cache':>8} {'prefill s':>9} {'step ms':>8} {'KV MiB':>8}", file=out)
    for name in ("dynamic", "tree"):
        r = f[name]
        print(f"{name:>8} {r['prefill_s']:9.3f} {r['step_s'] * 1e3:8.2f} {r['kv_bytes'] / 2**20:8.2f}", file=out)
    print(f"         KV bytes dynamic/tree {f['kv_bytes_ratio']:.2f}x (tokens predict {f['kv_bytes_ratio_predicted']:.2f}x); "
          f"step time tree/dynamic {f['step_time_ratio_tree_over_dynamic']:.2f}; max |logit diff| {f['max_abs_logit_diff']:.1e}, "
          f"next token identical {f['next_token_identical_rows']}", file=out)


def main(args) -> int:
    """``ttscale bench kv-cache``: validate the flags (before loading a model), run, print the table and the JSON line.

    Refuses ``--n``, ``--prompt`` or ``--steps`` below 1 and the harness's timing flags out of range, each with
    one sentence.
    """
    args = harness.namespace(args)
    for flag, value in (("--n", args.n), ("--prompt", args.prompt), ("--steps", args.steps)):
        harness.at_least(flag, value, 1)
    harness.check_timing_args(args)
    result = bench(args.model, args.n, args.prompt, args.steps, args.repeats, args.warmup, args.seed, args.threads)
    return harness.finish(result, args.json, print_table)


if __name__ == "__main__":
    sys.exit(harness.run_main(__doc__, add_arguments, main))
