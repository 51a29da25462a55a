"""The ``ttscale`` command: the parser from ``engine/cli/flags.py``, and dispatch to the command that runs.

    ttscale generate | search | eval [report] | trace show | bench {budget,search,kv-cache,prm-memory}

The parser is torch-free, so ``--help``, ``--version`` and a refused flag answer without importing torch. Each
parser's ``func`` names its runner as ``"module:function"`` (``engine.cli.generate:run``); :func:`run_command`
imports that module only when the command runs — the one import by name in the project, checked by a test that
resolves every runner. Every user error is a :class:`TTScaleError`: printed as one ``ttscale: error: ...`` sentence,
exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from engine.cli.args import render_config_error
from engine.cli.flags import COMMANDS
from engine.errors import ConfigError, TTScaleError
from engine.version import package_version


class Parser(argparse.ArgumentParser):
    """argparse with ttscale's error style: a bad flag or value is one ``ttscale: error:`` line (exit status 2) that
    names the flag and points at the command's ``--help``, instead of a usage block followed by the error."""

    def error(self, message: str):
        self.exit(2, f"ttscale: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ttscale`` parser with every command of :data:`COMMANDS` and ``--version`` (every sub-parser is a :class:`Parser`)."""
    parser = Parser(prog="ttscale", description="Test-time scaling for Hugging Face models: budget forcing and search.")
    parser.add_argument("--version", action="version", version=f"ttscale {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def _quiet_libraries() -> None:
    """Library loggers at ERROR and transformers' progress bars off: the commands print their own progress."""
    logging.basicConfig(level=logging.INFO, format="ttscale: %(message)s")
    for noisy in ("transformers", "accelerate", "datasets", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # imported by the command's module; the parser never imports it
        from transformers.utils import logging as hf_logging  # deferred: ttscale --help must not import transformers

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def run_command(name: str):
    """The function a parser's ``func`` names (``"module:function"``), its module imported now."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ttscale`` console script; returns the exit status (0 after ``--help``, 2 for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a refused flag (2, already printed): a status, not an exception
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    command = run_command(args.func)
    _quiet_libraries()
    try:
        return int(command(args) or 0)
    except ConfigError as exc:  # a config dataclass names its field; the user typed the flag
        print(f"ttscale: error: {render_config_error(exc, args)}", file=sys.stderr)
        return 2
    except TTScaleError as exc:
        print(f"ttscale: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ttscale: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
