"""What every speed benchmark shares: warm-up, interleaved repeats, the statistic, and the one JSON envelope.

    ttscale bench budget | search | kv-cache [--repeats R] [--warmup W] [--threads T] [--json]

A benchmark builds its competitors as zero-argument callables over the same model and inputs, and hands them to
:func:`run_interleaved`, which runs each one ``warmup`` times untimed, then ``repeats`` timed rounds whose order
alternates so that a load spike on a shared machine hurts no competitor alone:

    warm-up   A B C                (each ``warmup`` times, in the given order; results thrown away)
    round 0   A B C
    round 1   C B A                (reversed)
    round 2   A B C  ...

The statistic is the fastest round of each competitor (``min``); the median is reported next to it. Every
benchmark ends with one JSON line, :func:`envelope`'s shape:

    {"benchmark": name, "config": {...}, "versions": {"torch", "transformers", "python"},
     "device": {"type", "threads", "cpu"[, "gpu"]},
     "timing": {"warmup": W, "repeats": R, "order": "interleaved", "statistic": "min"}, "figures": {...}}

Nothing here touches a model: the timing logic is testable with fake competitors and a fake clock.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
import transformers

from benchmarks.cli import run_module
from benchmarks.options import TimingOptions, command_config  # noqa: F401 (re-exported)
from engine.cli.args import CommandConfig
from engine.errors import TTScaleError

STATISTIC = "min"  # the figure quoted; the median is reported beside it


@dataclass
class Timings:
    """Wall times of every timed round, per competitor, and what each competitor returned.

    ``times[name]`` lists seconds in round order; ``results[name]`` the value of each timed round (same order).
    """

    warmup: int
    repeats: int
    times: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, list[Any]] = field(default_factory=dict)

    def last(self, name: str) -> Any:
        """What ``name`` returned in its last timed round."""
        return self.results[name][-1]

    def fastest(self, name: str) -> float:
        """The fastest timed round of ``name``, in seconds (the statistic benchmarks quote)."""
        return min(self.times[name])

    def median(self, name: str) -> float:
        """The median timed round of ``name``, in seconds."""
        return statistics.median(self.times[name])

    def fastest_result(self, name: str, key: str | None = None) -> Any:
        """What ``name`` returned in its fastest round: by the harness's wall time, or by ``result[key]`` when given.

        A competitor that times its own phases (and leaves set-up out) passes ``key="wall_s"``, so that the phases
        reported belong to the round whose own wall time was fastest.
        """
        runs = range(len(self.times[name]))
        pick = min(runs, key=(lambda i: self.times[name][i]) if key is None else (lambda i: self.results[name][i][key]))
        return self.results[name][pick]

    def phase(self, name: str, key: str) -> list[float]:
        """``result[key]`` of every timed round of ``name``, in round order (a phase a competitor timed itself)."""
        return [r[key] for r in self.results[name]]

    def timing(self) -> dict:
        """The ``timing`` block of the envelope: how these figures were measured."""
        return timing_block(self.warmup, self.repeats)


def timed(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> tuple[Any, float]:
    """Call ``fn()`` once; return ``(its result, seconds it took)`` measured with ``clock``."""
    t0 = clock()
    out = fn()
    return out, clock() - t0


def round_order(names: list[str], round_index: int) -> list[str]:
    """The order competitors run in timed round ``round_index``: as given on even rounds, reversed on odd ones."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def run_interleaved(competitors: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                    clock: Callable[[], float] = time.perf_counter) -> Timings:
    """Warm up, then time ``repeats`` interleaved rounds of every competitor (see the module docstring).

    Each competitor is a zero-argument callable; the whole call is timed, so work that is not to be measured
    (tokenising, building inputs) belongs outside it. Warm-up rounds run in the given order and are not timed.
    Refuses no competitors, ``repeats < 1`` and ``warmup < 0``.
    """
    if not competitors:
        raise TTScaleError("run_interleaved needs at least one competitor; got none")
    if repeats < 1:
        raise TTScaleError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise TTScaleError(f"warmup must be >= 0, got {warmup}")
    names = list(competitors)
    for _ in range(warmup):
        for name in names:
            competitors[name]()
    out = Timings(warmup, repeats, {n: [] for n in names}, {n: [] for n in names})
    for r in range(repeats):
        for name in round_order(names, r):
            result, seconds = timed(competitors[name], clock)
            out.times[name].append(seconds)
            out.results[name].append(result)
    return out


def timing_block(warmup: int, repeats: int) -> dict:
    """The envelope's ``timing`` block for ``warmup`` untimed and ``repeats`` interleaved timed rounds."""
    return {"warmup": warmup, "repeats": repeats, "order": "interleaved", "statistic": STATISTIC}


def versions() -> dict:
    """Versions of torch, transformers and Python, as the envelope reports them."""
    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def device_info(device) -> dict:
    """The envelope's ``device`` block: device type, torch's intra-op threads, the CPU, and the GPU name on CUDA."""
    info = {"type": str(device), "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def envelope(name: str, config: dict, device: dict, timing: dict, figures: dict) -> dict:
    """The one JSON object every benchmark ends with (shape in the module docstring); versions are read here."""
    return {"benchmark": name, "config": config, "versions": versions(), "device": device, "timing": timing,
            "figures": figures}


def finish(result: dict, json_only: bool, table: Callable[[dict], None] | None = None, out=None) -> int:
    """Print ``table(result)`` unless ``json_only``, then ``result`` as one JSON line (always last); returns 0."""
    out = out or sys.stdout
    if table is not None and not json_only:
        table(result)
    print(json.dumps(result), file=out, flush=True)
    return 0


def add_timing_arguments(p: argparse.ArgumentParser, repeats: int) -> CommandConfig:
    """Add only the timing flags (``--repeats``, ``--warmup``, ``--threads``, ``--json``, ``--config``); read them
    back with :func:`namespace`."""
    spec = CommandConfig(TimingOptions, defaults={"repeats": repeats}, titles={TimingOptions: "timing"})
    spec.add_to(p)
    return spec


def namespace(args) -> SimpleNamespace:
    """Every flag of the parser ``args`` came from (given, from ``--config``, or its default) as attributes."""
    return SimpleNamespace(**args._spec.values(args))


def check_timing_args(args) -> None:
    """Refuse ``--repeats < 1``, ``--warmup < 0`` and ``--threads < 1``, each with one sentence."""
    at_least("--repeats", args.repeats, 1)
    at_least("--warmup", args.warmup, 0)
    if args.threads is not None:
        at_least("--threads", args.threads, 1)


def at_least(flag: str, value: int, minimum: int) -> None:
    """Refuse ``value < minimum`` for ``flag`` with one sentence naming the flag, the rule and the value."""
    if value < minimum:
        raise TTScaleError(f"{flag} must be >= {minimum}, got {value}")


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads when ``threads`` is given; leave torch's default otherwise."""
    if threads:
        torch.set_num_threads(threads)


def run_main(doc: str, add_arguments: Callable[[argparse.ArgumentParser], None], main: Callable[[Any], int],
             argv: list[str] | None = None) -> int:
    """``python -m benchmarks.speed.<name>``: :func:`benchmarks.cli.run_module` (parse the flags and run as
    ``ttscale bench`` does; a refused flag is one ``ttscale: error:`` sentence with exit status 2)."""
    return run_module(doc, add_arguments, main, argv)
