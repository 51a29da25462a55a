"""Side-by-side measurement: tree cache versus a DynamicCache batch that holds one copy of the prompt per row.

    python -m benchmarks.speed.kv_cache --model smollm2-135m --n 16 --prompt 200 --steps 32

Both competitors get the same prompt and the same pre-drawn token per row and step, so they do identical model
work; only the cache differs. The baseline is what plain transformers offers (REFERENCE §5): prefill once, then
``batch_repeat_interleave(n)`` and decode all rows together. Phases are timed separately after a warm-up, the
order alternates between repeats, and the run ends with one JSON line (STYLE §11).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import transformers
from transformers import DynamicCache

from engine.kv_cache.compat import cache_kwargs
from engine.kv_cache.manager import KVCacheManager


def _dynamic(model, prompt: list[int], feed: torch.Tensor) -> dict:
    n, steps = feed.shape
    cache = DynamicCache(config=model.config)
    with_cache = cache_kwargs(model, cache)  # read once, outside the timed loop
    with torch.no_grad():
        t0 = time.perf_counter()
        model(input_ids=torch.tensor([prompt]), logits_to_keep=1, **with_cache)
        t1 = time.perf_counter()
        cache.batch_repeat_interleave(n)  # one copy of the prompt per row
        for s in range(steps):
            mask = torch.ones(n, len(prompt) + s + 1, dtype=torch.long)
            model(input_ids=feed[:, s: s + 1], attention_mask=mask, logits_to_keep=1, **with_cache)
        t2 = time.perf_counter()
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return {"prefill_s": t1 - t0, "step_s": (t2 - t1) / steps, "kv_bytes": held}


def _tree(model, prompt: list[int], feed: torch.Tensor) -> dict:
    n, steps = feed.shape
    mgr = KVCacheManager(model, self_check=False)
    t0 = time.perf_counter()
    root = mgr.prefill(prompt)
    t1 = time.perf_counter()
    kids = mgr.fork(root, n)
    mgr.release(root)
    for s in range(steps):
        mgr.decode(kids, feed[:, s])
    t2 = time.perf_counter()
    st = mgr.stats()
    out = {"prefill_s": t1 - t0, "step_s": (t2 - t1) / steps, "kv_bytes": st.memory_bytes, "reserved_bytes": st.reserved_bytes,
           "tree_tokens": st.tree_tokens, "forward_tokens": st.forward_tokens}
    mgr.release(kids)
    return out


def run(model, n: int, prompt_len: int, steps: int, repeats: int = 3, seed: int = 0) -> dict:
    """Measure both caches ``repeats`` times (alternating order) after one warm-up; returns medians and ratios."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.get_output_embeddings().weight.shape[0]
    prompt = torch.randint(0, vocab, (prompt_len,), generator=g).tolist()
    feed = torch.randint(0, vocab, (n, steps), generator=g)  # (N, S) the token each row gets at each step
    _dynamic(model, prompt[:8], feed[:, :2])  # warm-up
    _tree(model, prompt[:8], feed[:, :2])
    runs = {"dynamic": [], "tree": []}
    for r in range(repeats):
        order = ("dynamic", "tree") if r % 2 == 0 else ("tree", "dynamic")
        for name in order:
            runs[name].append((_dynamic if name == "dynamic" else _tree)(model, prompt, feed))
    med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in runs.items()}
    return {
        "dynamic": med["dynamic"],
        "tree": med["tree"],
        "kv_bytes_ratio": med["dynamic"]["kv_bytes"] / med["tree"]["kv_bytes"],
        "step_time_ratio_tree_over_dynamic": med["tree"]["step_s"] / med["dynamic"]["step_s"],
        "prefill_time_ratio_tree_over_dynamic": med["tree"]["prefill_s"] / med["dynamic"]["prefill_s"],
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: load a model, run :func:`run`, print one JSON line."""
    from engine.models import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="embedded name, local directory, GGUF file or hub id")
    ap.add_argument("--n", type=int, default=16, help="branches forked from the prompt")
    ap.add_argument("--prompt", type=int, default=200, help="prompt length in tokens")
    ap.add_argument("--steps", type=int, default=32, help="decode steps (one token per branch each)")
    ap.add_argument("--repeats", type=int, default=3, help="measured repeats per competitor (median reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    figures = run(lm.model, args.n, args.prompt, args.steps, args.repeats)
    print(json.dumps({"bench": "kv_cache", "config": vars(args), "torch": torch.__version__, "transformers": transformers.__version__,
                      "device": str(lm.device), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      **figures}))


if __name__ == "__main__":
    main()
