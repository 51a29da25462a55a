"""``ttscale trace show FILE``: a token-level trace with forced tokens and suppressed endings marked."""

from __future__ import annotations

import os
import sys

from engine.cli.flags import TRACE, TraceShowOptions
from engine.trace import read_trace, render_trace


def run(args) -> int:
    """``ttscale trace show FILE``: render a trace in the terminal (colour when stdout is a terminal)."""
    opts = TRACE.build(args)[TraceShowOptions]
    color = sys.stdout.isatty() and not opts.no_color and "NO_COLOR" not in os.environ
    print(render_trace(read_trace(opts.file), color=color, prompt_index=opts.prompt_index, show_top=opts.top))
    return 0
