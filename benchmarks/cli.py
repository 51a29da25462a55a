"""What every benchmark's entry point shares, torch-free: printing the result (table, then the one JSON line, and
``--out``), and ``python -m benchmarks.<...>`` with ``ttscale``'s error style."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from engine.cli.args import render_config_error
from engine.cli.common import check_output_file
from engine.errors import ConfigError, TTScaleError


def emit(run: Callable[[], dict], json_only: bool, out: str | None, table: Callable[[dict], None] | None = None) -> int:
    """Check ``out`` is writable (before the work, so a bad location loses nothing), ``run()``, print ``table(result)``
    unless ``json_only``, then the result as the one final JSON line, also written to ``out`` when given. Returns 0."""
    if out:
        check_output_file(out, "--out")
    result = run()
    if table is not None and not json_only:
        table(result)
    line = json.dumps(result)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(line + "\n")
    print(line, flush=True)
    return 0


def run_module(doc: str, add_arguments: Callable[[argparse.ArgumentParser], None], main: Callable[[Any], int],
               argv: list[str] | None = None) -> int:
    """``python -m benchmarks.<package>.<name>``: parse the benchmark's flags and run it as ``ttscale bench`` does; a
    refused value is one ``ttscale: error:`` sentence (with the flag's spelling) and exit status 2, not a traceback."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(main(args) or 0)
    except ConfigError as exc:
        print(f"ttscale: error: {render_config_error(exc, args)}", file=sys.stderr)
        return 2
    except TTScaleError as exc:
        print(f"ttscale: error: {exc}", file=sys.stderr)
        return 2
