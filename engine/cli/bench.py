"""``ttscale bench {budget,search}``: the speed benchmarks of ``benchmarks/speed``, registered explicitly.

Each benchmark module has ``add_arguments(parser)`` and ``main(args)``, and ends its output with one JSON line.
"""

from __future__ import annotations

from benchmarks.speed import budget, search

BENCHMARKS = {"budget": budget, "search": search}


def add_parser(sub) -> None:
    """Register ``bench`` and one subcommand per benchmark of :data:`BENCHMARKS`."""
    p = sub.add_parser("bench", help="run a speed benchmark (ends with one JSON line)")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, module in BENCHMARKS.items():
        b = bsub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(b)
        b.set_defaults(func=module.main)
