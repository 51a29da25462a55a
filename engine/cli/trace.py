"""``ttscale trace show FILE``: a token-level trace with forced tokens and suppressed endings marked."""

from __future__ import annotations

import os
import sys

from engine.trace import read_trace, render_trace


def add_parser(sub) -> None:
    """Register ``trace`` (and ``trace show``) on the ``ttscale`` subcommands."""
    t = sub.add_parser("trace", help="inspect a token-level trace")
    tsub = t.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    ts = tsub.add_parser("show", help="render a trace with forced tokens and suppressed endings marked")
    ts.add_argument("file")
    ts.add_argument("--prompt-index", type=int, default=None)
    ts.add_argument("--top", action="store_true", help="show each token's probability and top alternatives")
    ts.add_argument("--no-color", action="store_true")
    ts.set_defaults(func=run)



def run(args) -> int:
    """``ttscale trace show FILE``: render a trace in the terminal (colour when stdout is a terminal)."""
    color = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    print(render_trace(read_trace(args.file), color=color, prompt_index=args.prompt_index, show_top=args.top))
    return 0
