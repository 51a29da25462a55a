"""The ``ttscale`` command: one module per subcommand, registered here explicitly.

    ttscale generate | search | eval | trace show | bench {budget,search,kv-cache}

Each command module has ``add_parser(subparsers)`` and sets ``func`` on its parser; a module that fails to import
fails the whole command loudly (no command is discovered by name). Every user error is a :class:`TTScaleError`:
printed as one ``ttscale: error: ...`` sentence, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from transformers.utils import logging as hf_logging

from engine.cli import bench, eval, generate, search, trace
from engine.cli.args import render_config_error
from engine.errors import ConfigError, TTScaleError
from engine.version import package_version

COMMANDS = (generate, search, eval, trace, bench)


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
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _quiet_libraries() -> None:
    """Library loggers at ERROR and transformers' progress bars off: the commands print their own progress."""
    logging.basicConfig(level=logging.INFO, format="ttscale: %(message)s")
    for noisy in ("transformers", "accelerate", "datasets", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


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
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
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
