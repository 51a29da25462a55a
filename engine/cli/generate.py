"""``ttscale generate``: budget-forced generation in one ``generate`` call per batch; each batch's rows (and trace
records) are printed (and written) as soon as it finishes, so an interrupted run keeps what it finished.

    ttscale generate "What is 7 * 8?" --min-thinking-tokens 64 --max-thinking-tokens 256 --json --trace t.jsonl
    ttscale generate --config budget.yaml "What is 7 * 8?"      # any flag as a YAML key; flags given win

Flags are the fields of ``ModelConfig``, ``FormatConfig``, ``BudgetConfig``, ``SamplingConfig``,
:class:`~engine.cli.common.PromptOptions` and :class:`GenerateOptions`; all are checked before the model loads.

Every run ends with an answer by default: when the model ends its turn inside thinking, the end-of-thinking
delimiter is forced so an answer follows, with or without a budget (``BudgetConfig.answer_without_budget``, which
``generate`` sets; no thinking cap is imposed, and the library default stays off so that a budget-free
``ThinkingEngine.generate`` equals plain ``model.generate``). ``--no-answer-on-end-of-turn`` turns it off. A row that
still ends inside thinking gets a one-line hint on stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

from engine.cli.common import PromptOptions, check_output_file, finished_rows, interrupts_between_rows
from engine.cli.flags import GENERATE, GenerateOptions
from engine.engine import ThinkingEngine
from engine.formats import FormatConfig
from engine.jsonl import JsonlWriter
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.model_config import ModelConfig


def _print_text(r, number: int, total: int, out) -> None:
    """One result as a readable block: prompt, thinking (with what the budget did), answer."""
    capped = ", capped" if r.forced_stop else ""
    print(f"━━ [{number}/{total}] {r.prompt}", file=out)
    waits = f"{r.waits_injected} continuation{'' if r.waits_injected == 1 else 's'} injected"
    print(f"── thinking ({r.thinking_tokens} tokens, {waits}{capped})", file=out)
    print(r.thinking.strip(), file=out)
    print(f"── answer ({r.answer_tokens} tokens, finish: {r.finish_reason})", file=out)
    print(r.answer, file=out)
    print(file=out)


def run(args) -> int:
    """``ttscale generate``: check every flag and the trace location, load the model, then generate batch by batch,
    printing each batch's rows (and appending its trace records) as soon as it finishes.

    Refuses bad flags and an unwritable ``--trace`` before the model loads. Interrupted (Ctrl-C), it says on stderr
    how many rows were finished and where they are, then exits 130.
    """
    c = GENERATE.build(args)  # every value checked before the model loads
    opts = c[GenerateOptions]
    prompts = c[PromptOptions].prompts()
    fmt = c[FormatConfig]
    fmt.thinking_format()
    if opts.trace:
        check_output_file(opts.trace, "--trace")
    engine = ThinkingEngine.from_config(c[ModelConfig], fmt)
    print(f"ttscale: model {c[ModelConfig].model}; {engine.describe()}", file=sys.stderr)
    budget = replace(c[BudgetConfig], answer_without_budget=True)  # an answer after an end of turn in thinking
    batches = engine.iter_generate(prompts, budget, c[SamplingConfig], batch_size=opts.batch_size,
                                   max_new_tokens=opts.max_new_tokens, trace=bool(opts.trace), progress=True)
    writer = JsonlWriter(opts.trace, mode="w") if opts.trace else None  # a rerun starts the trace afresh
    done = in_thinking = 0
    try:
        for batch in batches:
            for r in batch:
                with interrupts_between_rows():  # a Ctrl-C waits for the row's trace records and its line
                    if writer is not None:
                        for rec in r.trace:
                            writer.append(rec)
                    if opts.json:
                        print(json.dumps(r.to_json(), ensure_ascii=False))
                    else:
                        _print_text(r, done + 1, len(prompts), sys.stdout)
                    done += 1
                in_thinking += r.finish_reason == "stop_in_thinking"
            sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"ttscale: interrupted after {done} of {len(prompts)} rows; {_kept(done, writer)}", file=sys.stderr)
        raise
    finally:
        if writer is not None:
            writer.close()
    if in_thinking:
        print(f"ttscale: note: {hint(in_thinking, len(prompts))}", file=sys.stderr)
    if writer is not None:
        print(f"ttscale: wrote {writer.rows} trace records to {opts.trace} (view: ttscale trace show {opts.trace})",
              file=sys.stderr)
    return 0


def hint(in_thinking: int, total: int) -> str:
    """What to try when ``in_thinking`` of ``total`` rows ended their turn without leaving thinking."""
    return (f"the model ended its turn inside thinking on {in_thinking} of {total} prompts; "
            "it may not be trained for this format — try --format think-tags, a --system prompt asking it to think, "
            "or --min-thinking-tokens")


def _kept(done: int, writer: JsonlWriter | None) -> str:
    """Where the finished rows of an interrupted run are, in words."""
    where = finished_rows(done)
    if writer is not None:
        where += f"; {writer.path} holds their {writer.rows} trace records"
    return where
