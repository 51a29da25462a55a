"""``ttscale bench {budget,search}``: the benchmarks, registered on the ttscale command."""

from __future__ import annotations

from engine.cli import import_optional

BENCHMARKS = {"budget": "benchmarks.bench_budget", "search": "benchmarks.bench_search"}


def add_parser(sub) -> None:
    """Add ``bench`` and one subcommand per benchmark module that exists."""
    p = sub.add_parser("bench", help="run a benchmark (ends with one JSON line)")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, module_name in BENCHMARKS.items():
        module = import_optional(module_name)
        if module is None:
            continue
        b = bsub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(b)
        b.set_defaults(func=module.main)
