"""``ttscale view FILE_OR_DIR [--out PAGE.html]``: one self-contained HTML page of a trace, a search tree or a run."""

from __future__ import annotations

import os
import sys

from engine.cli.common import check_output_file
from engine.cli.flags import VIEW, ViewOptions
from engine.jsonl import write_text_atomic
from engine.view.load import check_source, load_view
from engine.view.page import render_page


def run(args) -> int:
    """``ttscale view``: read and check the input (one sentence when it is none of the four kinds), then write the
    page atomically and say where it is. Refuses an unwritable ``--out`` before reading anything."""
    opts = VIEW.build(args)[ViewOptions]
    check_source(opts.path)
    out = opts.page_path()
    check_output_file(out, "--out")
    view = load_view(opts.path)
    html = render_page(view)
    write_text_atomic(out, html)
    for w in view.warnings:
        print(f"ttscale view: warning: {w}", file=sys.stderr)
    print(f"ttscale view: wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB, {view.kind}: {view.title}); open it in a browser "
          f"(file://{os.path.abspath(out)})", file=sys.stderr)
    return 0
