"""What every ``ttscale`` command shares: the model, format, budget and sampling flags, and reading prompts.

Command modules (``engine/cli/<command>.py``) import from here; nothing here imports a command.
"""

from __future__ import annotations

import argparse

from engine.errors import TTScaleError
from engine.formats import get_format
from engine.jsonl import parse_line
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig


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


def budget_from_args(args) -> BudgetConfig:
    """The :class:`BudgetConfig` of the budget flags (refuses what it refuses)."""
    return BudgetConfig(min_thinking_tokens=args.min_thinking_tokens, max_thinking_tokens=args.max_thinking_tokens,
                        num_ignore=args.num_ignore, ignore_strs=tuple(args.ignore_str or ("Wait",)),
                        max_answer_tokens=args.max_answer_tokens, final_answer_str=args.final_answer_str)


def sampling_from_args(args) -> SamplingConfig:
    """The :class:`SamplingConfig` of the sampling flags (refuses what it refuses)."""
    return SamplingConfig(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed)


def engine_from_args(args):
    """Load the model and build a ThinkingEngine from the shared flags."""
    from engine.engine import ThinkingEngine  # loads torch + transformers: only commands that run a model need it

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
            row = parse_line(line, path=path, number=n, what="--prompts-file")
            key = next((k for k in ("prompt", "question", "problem") if k in row), None)
            if key is None:
                raise TTScaleError(f"--prompts-file {path}, line {n}: a JSON row needs a prompt, question or problem field; it has {sorted(row)}")
            prompts.append(str(row[key]))
        else:
            prompts.append(line)
    if not prompts:
        raise TTScaleError(f"--prompts-file {path}: the file holds no prompts")
    return prompts




def gather_prompts(args) -> list[str]:
    """The prompts of a command: its PROMPT arguments, then ``--prompts-file``. Refuses none at all and empty ones."""
    prompts = list(args.prompt or [])
    if args.prompts_file:
        prompts += read_prompts_file(args.prompts_file)
    if not prompts:
        raise TTScaleError("no prompt given; pass PROMPT arguments or --prompts-file F")
    if any(not p.strip() for p in prompts):
        raise TTScaleError("a prompt is empty; give non-empty text")
    return prompts
