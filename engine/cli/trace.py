"""``ttscale trace show FILE``: a token-level trace with forced tokens and suppressed endings marked."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from engine.cli.args import CommandConfig
from engine.errors import ConfigError
from engine.trace import read_trace, render_trace


@dataclass(frozen=True)
class TraceShowOptions:
    """What ``trace show`` renders."""

    file: str = field(default="", metadata={"help": "trace JSONL written by --trace", "positional": True, "nargs": None, "metavar": "FILE"})
    prompt_index: int | None = field(default=None, metadata={"help": "show only this prompt of the trace"})
    top: bool = field(default=False, metadata={"help": "show each token's probability and top alternatives"})
    no_color: bool = field(default=False, metadata={"help": "plain text even on a terminal"})

    def __post_init__(self):
        if self.prompt_index is not None and self.prompt_index < 0:
            raise ConfigError(f"`prompt_index` must be >= 0, got {self.prompt_index}")


SPEC = CommandConfig(TraceShowOptions, titles={TraceShowOptions: "display"})


def add_parser(sub) -> None:
    """Register ``trace`` (and ``trace show``) on the ``ttscale`` subcommands."""
    t = sub.add_parser("trace", help="inspect a token-level trace")
    tsub = t.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    ts = tsub.add_parser("show", help="render a trace with forced tokens and suppressed endings marked")
    SPEC.add_to(ts)
    ts.set_defaults(func=run)


def run(args) -> int:
    """``ttscale trace show FILE``: render a trace in the terminal (colour when stdout is a terminal)."""
    opts = SPEC.build(args)[TraceShowOptions]
    color = sys.stdout.isatty() and not opts.no_color and "NO_COLOR" not in os.environ
    print(render_trace(read_trace(opts.file), color=color, prompt_index=opts.prompt_index, show_top=opts.top))
    return 0
