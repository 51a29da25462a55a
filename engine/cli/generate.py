"""``ttscale generate``: budget-forced generation in one ``generate`` call per batch.

    ttscale generate "What is 7 * 8?" --min-thinking-tokens 64 --max-thinking-tokens 256 --json --trace t.jsonl
"""

from __future__ import annotations

import json
import sys

from engine.cli.common import (
    add_budget_args,
    add_format_args,
    add_model_args,
    add_sampling_args,
    budget_from_args,
    engine_from_args,
    gather_prompts,
    sampling_from_args,
)
from engine.errors import TTScaleError
from engine.trace import write_trace


def add_parser(sub) -> None:
    """Register ``generate`` on the ``ttscale`` subcommands."""
    g = sub.add_parser("generate", help="budget-forced generation", description="Generate with s1 budget forcing in one generate call.")
    g.add_argument("prompt", nargs="*", help="prompt text (several allowed)")
    g.add_argument("--prompts-file", default=None, help="file with one prompt per line, or JSONL with a prompt field")
    add_model_args(g)
    add_format_args(g)
    add_budget_args(g)
    add_sampling_args(g)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--max-new-tokens", type=int, default=None, help="overall cap (default: thinking cap + answer cap + forced text)")
    g.add_argument("--json", action="store_true", help="one JSON object per prompt")
    g.add_argument("--trace", default=None, metavar="FILE", help="write a token-level JSONL trace")
    g.set_defaults(func=run)



def _print_text(results, out) -> None:
    for i, r in enumerate(results):
        capped = ", capped" if r.forced_stop else ""
        print(f"━━ [{i + 1}/{len(results)}] {r.prompt}", file=out)
        waits = f"{r.waits_injected} continuation{'' if r.waits_injected == 1 else 's'} injected"
        print(f"── thinking ({r.thinking_tokens} tokens, {waits}{capped})", file=out)
        print(r.thinking.strip(), file=out)
        print(f"── answer ({r.answer_tokens} tokens, finish: {r.finish_reason})", file=out)
        print(r.answer, file=out)
        print(file=out)


def run(args) -> int:
    """``ttscale generate``: check every flag, load the model, generate in batches, print (and write the trace)."""
    prompts = gather_prompts(args)
    budget, sampling = budget_from_args(args), sampling_from_args(args)  # validate before loading the model
    if args.batch_size < 1:
        raise TTScaleError(f"--batch-size must be >= 1, got {args.batch_size}")
    engine = engine_from_args(args)
    print(f"ttscale: model {args.model}; {engine.describe()}", file=sys.stderr)
    results = engine.generate(prompts, budget, sampling, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                              trace=bool(args.trace), progress=True)
    if args.trace:
        n = write_trace(args.trace, results)
        print(f"ttscale: wrote {n} trace records to {args.trace} (view: ttscale trace show {args.trace})", file=sys.stderr)
    if args.json:
        for r in results:
            print(json.dumps(r.to_json(), ensure_ascii=False))
    else:
        _print_text(results, sys.stdout)
    return 0


