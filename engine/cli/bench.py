"""``ttscale bench {budget,search,kv-cache,prm-memory}``: the speed benchmarks of ``benchmarks/speed``, registered explicitly.

    ttscale bench budget | search | kv-cache | prm-memory [flags]      (ttscale bench kv-cache --help)

Each benchmark module has ``add_arguments(parser)`` and ``main(args)``, times its competitors through
``benchmarks/speed/harness.py`` and ends its output with the harness's one JSON line.
"""

from __future__ import annotations

from benchmarks.speed import budget, kv_cache, prm_memory, search

BENCHMARKS = {"budget": budget, "search": search, "kv-cache": kv_cache, "prm-memory": prm_memory}


def add_parser(sub) -> None:
    """Register ``bench`` and one subcommand per benchmark of :data:`BENCHMARKS`."""
    p = sub.add_parser("bench", help="run a speed benchmark (ends with one JSON line)")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, module in BENCHMARKS.items():
        b = bsub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(b)
        b.set_defaults(func=module.main)
