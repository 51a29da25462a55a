"""The ``ttscale`` command: ``generate``, ``trace show``, ``bench``, and the commands other modules register.

Every user error is a :class:`TTScaleError`: printed as one ``ttscale: error: ...`` sentence, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from engine.errors import TTScaleError

# Modules that add subcommands: each has add_parser(subparsers) and sets func=run on its parser.
COMMAND_MODULES = ("engine.cli_search", "benchmarks.eval_cli", "benchmarks.cli")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model-loading flags shared by every command that loads a model."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default="smollm2-135m", help="embedded name (smollm2-135m, gemma3-270m), local dir, .gguf file or hub id")
    g.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16")
    g.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    g.add_argument("--device-map", default=None, help="shard the model over GPUs through accelerate, e.g. auto")
    g.add_argument("--attn", default="auto", help="attention: auto (flash_attention_2 if installed on GPU, else sdpa), sdpa, eager, flash_attention_2")
    g.add_argument("--quantization", default=None, choices=["4bit", "8bit"], help="bitsandbytes quantisation (GPU only)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own Python code to run")


def add_format_args(p: argparse.ArgumentParser) -> None:
    """Thinking-format flags (see engine/formats.py)."""
    g = p.add_argument_group("thinking format")
    g.add_argument("--format", default="s1", help="s1 (<|im_start|>think / <|im_start|>answer), think-tags (<think> / </think>) or custom")
    g.add_argument("--think-start", default=None, help="string that opens thinking (overrides the format's)")
    g.add_argument("--think-end", default=None, help="end-of-thinking delimiter (overrides the format's)")
    g.add_argument("--template", default="auto", choices=["auto", "chat", "plain"], help="prompt style: chat template or plain text")
    g.add_argument("--system", default=None, help="system message for chat templates")


def add_budget_args(p: argparse.ArgumentParser) -> None:
    """Budget-forcing flags (REFERENCE §1)."""
    g = p.add_argument_group("budget forcing")
    g.add_argument("--min-thinking-tokens", type=int, default=0, help="replace attempts to end thinking below this many tokens")
    g.add_argument("--max-thinking-tokens", type=int, default=None, help="force the end of thinking at this many tokens")
    g.add_argument("--num-ignore", type=int, default=0, help="ignore the first K attempts to end thinking (s1 thinking_n_ignore)")
    g.add_argument("--ignore-str", action="append", default=None, help="continuation string (default Wait); repeat to rotate")
    g.add_argument("--final-answer-str", default="Final Answer:", help="forced after the delimiter when the cap is hit")
    g.add_argument("--max-answer-tokens", type=int, default=None, help="cap on answer tokens")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """Sampling flags; temperature 0 is greedy."""
    g = p.add_argument_group("sampling")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0, help="0 = off")
    g.add_argument("--seed", type=int, default=None)


def budget_from_args(args):
    from engine.logits.budget import BudgetConfig

    return BudgetConfig(min_thinking_tokens=args.min_thinking_tokens, max_thinking_tokens=args.max_thinking_tokens,
                        num_ignore=args.num_ignore, ignore_strs=tuple(args.ignore_str or ("Wait",)),
                        max_answer_tokens=args.max_answer_tokens, final_answer_str=args.final_answer_str)


def sampling_from_args(args):
    from engine.logits.sampling import SamplingConfig

    return SamplingConfig(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed)


def engine_from_args(args):
    """Load the model and build a ThinkingEngine from the shared flags."""
    from engine.engine import ThinkingEngine
    from engine.formats import get_format

    fmt = get_format(args.format, args.think_start, args.think_end)
    return ThinkingEngine.from_pretrained(args.model, format=fmt, template=args.template, system=args.system,
                                          dtype=args.dtype, device=args.device, device_map=args.device_map,
                                          attn_implementation=args.attn, quantization=args.quantization,
                                          trust_remote_code=args.trust_remote_code)


def read_prompts_file(path: str) -> list[str]:
    """Prompts from a file: one per line, or JSONL with a ``prompt``/``question``/``problem`` field.

    Refuses a missing or unreadable file, a file with no prompts, and JSONL rows without a prompt field.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TTScaleError(f"--prompts-file {path}: cannot read it ({exc.__class__.__name__}: {exc})") from exc
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TTScaleError(f"--prompts-file {path}, line {n}: looks like JSON but does not parse ({exc.msg})") from exc
            key = next((k for k in ("prompt", "question", "problem") if k in row), None)
            if key is None:
                raise TTScaleError(f"--prompts-file {path}, line {n}: a JSON row needs a prompt, question or problem field; it has {sorted(row)}")
            prompts.append(str(row[key]))
        else:
            prompts.append(line)
    if not prompts:
        raise TTScaleError(f"--prompts-file {path}: the file holds no prompts")
    return prompts


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


def cmd_generate(args) -> int:
    from engine.trace import write_trace

    prompts = list(args.prompt or [])
    if args.prompts_file:
        prompts += read_prompts_file(args.prompts_file)
    if not prompts:
        raise TTScaleError("no prompt given; pass PROMPT arguments or --prompts-file F")
    for p in prompts:
        if not p.strip():
            raise TTScaleError("a prompt is empty; give non-empty text")
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


def cmd_trace_show(args) -> int:
    from engine.trace import read_trace, render_trace

    color = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    print(render_trace(read_trace(args.file), color=color, prompt_index=args.prompt_index, show_top=args.top))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ttscale", description="Test-time scaling for Hugging Face models: budget forcing and search.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("trace", help="inspect a token-level trace")
    tsub = t.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    ts = tsub.add_parser("show", help="render a trace with forced tokens and suppressed endings marked")
    ts.add_argument("file")
    ts.add_argument("--prompt-index", type=int, default=None)
    ts.add_argument("--top", action="store_true", help="show each token's probability and top alternatives")
    ts.add_argument("--no-color", action="store_true")
    ts.set_defaults(func=cmd_trace_show)

    for name in COMMAND_MODULES:
        module = import_optional(name)
        if module is not None:
            module.add_parser(sub)
    return parser


def import_optional(name: str):
    """Import a module that may not exist yet; None if it is missing (a missing dependency inside it still raises)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.INFO, format="ttscale: %(message)s")
    for noisy in ("transformers", "accelerate", "datasets", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ttscale`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except TTScaleError as exc:
        print(f"ttscale: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ttscale: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
