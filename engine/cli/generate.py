"""``ttscale generate``: budget-forced generation in one ``generate`` call per batch.

    ttscale generate "What is 7 * 8?" --min-thinking-tokens 64 --max-thinking-tokens 256 --json --trace t.jsonl
    ttscale generate --config budget.yaml "What is 7 * 8?"      # any flag as a YAML key; flags given win

Flags are the fields of ``ModelConfig``, ``FormatConfig``, ``BudgetConfig``, ``SamplingConfig``,
:class:`~engine.cli.common.PromptOptions` and :class:`GenerateOptions`; all are checked before the model loads.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from engine.cli.args import CommandConfig
from engine.cli.common import PromptOptions, load_engine
from engine.errors import ConfigError
from engine.formats import FormatConfig
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.models import ModelConfig
from engine.trace import write_trace


@dataclass(frozen=True)
class GenerateOptions:
    """How ``generate`` batches and what it writes."""

    batch_size: int = field(default=8, metadata={"help": "prompts per generate call"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "overall cap (default: thinking cap + answer cap + forced text)"})
    json: bool = field(default=False, metadata={"help": "one JSON object per prompt"})
    trace: str | None = field(default=None, metadata={"help": "write a token-level JSONL trace", "metavar": "FILE"})

    def __post_init__(self):
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be an integer >= 1, got {self.batch_size!r}")
        if self.max_new_tokens is not None and (not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1):
            raise ConfigError(f"`max_new_tokens` must be an integer >= 1 (or unset), got {self.max_new_tokens!r}")


SPEC = CommandConfig(PromptOptions, ModelConfig, FormatConfig, BudgetConfig, SamplingConfig, GenerateOptions,
                     titles={PromptOptions: "prompts", ModelConfig: "model", FormatConfig: "thinking format",
                             BudgetConfig: "budget forcing", SamplingConfig: "sampling", GenerateOptions: "output"})


def add_parser(sub) -> None:
    """Register ``generate`` on the ``ttscale`` subcommands."""
    g = sub.add_parser("generate", help="budget-forced generation", description="Generate with s1 budget forcing in one generate call.")
    SPEC.add_to(g)
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
    c = SPEC.build(args)  # every value checked before the model loads
    opts = c[GenerateOptions]
    prompts = c[PromptOptions].prompts()
    fmt = c[FormatConfig]
    fmt.thinking_format()
    engine = load_engine(c[ModelConfig], fmt)
    print(f"ttscale: model {c[ModelConfig].model}; {engine.describe()}", file=sys.stderr)
    results = engine.generate(prompts, c[BudgetConfig], c[SamplingConfig], batch_size=opts.batch_size,
                              max_new_tokens=opts.max_new_tokens, trace=bool(opts.trace), progress=True)
    if opts.trace:
        n = write_trace(opts.trace, results)
        print(f"ttscale: wrote {n} trace records to {opts.trace} (view: ttscale trace show {opts.trace})", file=sys.stderr)
    if opts.json:
        for r in results:
            print(json.dumps(r.to_json(), ensure_ascii=False))
    else:
        _print_text(results, sys.stdout)
    return 0
