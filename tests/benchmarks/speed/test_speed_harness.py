"""The speed harness with fake competitors and a fake clock: order, warm-up count, statistics, envelope (no model)."""

import argparse
import io
import json

import pytest

from benchmarks.speed import harness
from engine.errors import TTScaleError


class FakeClock:
    """A clock that only moves when a fake competitor says it ran for a while."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fakes(durations: dict[str, list[float]], clock: FakeClock, log: list):
    """Competitors that log each call and advance ``clock`` by their next scripted duration (warm-up ones included)."""
    def make(name):
        left = list(durations[name])

        def run():
            log.append(name)
            clock.now += left.pop(0)
            return f"{name}#{len(log)}"
        return run
    return {name: make(name) for name in durations}


def test_interleaved_order_and_warmup():
    clock, log = FakeClock(), []
    comps = fakes({"A": [9, 1, 1, 1, 1], "B": [9, 2, 2, 2, 2], "C": [9, 3, 3, 3, 3]}, clock, log)
    t = harness.run_interleaved(comps, repeats=4, warmup=1, clock=clock)
    # one untimed warm-up of each, in the given order; then rounds alternate forward and reversed
    assert log == ["A", "B", "C", "A", "B", "C", "C", "B", "A", "A", "B", "C", "C", "B", "A"]
    assert t.times == {"A": [1, 1, 1, 1], "B": [2, 2, 2, 2], "C": [3, 3, 3, 3]}  # warm-up's 9 s counted nowhere
    assert [len(t.results[n]) for n in "ABC"] == [4, 4, 4]
    assert t.last("A") == "A#15" and t.last("C") == "C#13"


def test_warmup_count_and_none():
    for warmup in (0, 2):
        clock, log = FakeClock(), []
        comps = fakes({"A": [1] * 5, "B": [1] * 5}, clock, log)
        harness.run_interleaved(comps, repeats=2, warmup=warmup, clock=clock)
        assert log[: 2 * warmup] == ["A", "B"] * warmup and len(log) == 2 * warmup + 4


def test_fastest_and_median():
    clock, log = FakeClock(), []
    comps = fakes({"A": [0, 5, 1, 3], "B": [0, 2, 8, 4]}, clock, log)
    t = harness.run_interleaved(comps, repeats=3, warmup=1, clock=clock)
    assert t.times == {"A": [5, 1, 3], "B": [2, 8, 4]}
    assert (t.fastest("A"), t.median("A")) == (1, 3) and (t.fastest("B"), t.median("B")) == (2, 4)
    assert t.timing() == {"warmup": 1, "repeats": 3, "order": "interleaved", "statistic": "min"}


def test_refusals_are_one_sentence():
    with pytest.raises(TTScaleError, match="repeats must be >= 1, got 0"):
        harness.run_interleaved({"A": lambda: None}, repeats=0)
    with pytest.raises(TTScaleError, match="warmup must be >= 0, got -1"):
        harness.run_interleaved({"A": lambda: None}, repeats=1, warmup=-1)
    with pytest.raises(TTScaleError, match="at least one competitor"):
        harness.run_interleaved({}, repeats=1)
    p = argparse.ArgumentParser()
    harness.add_timing_arguments(p, repeats=3)
    defaults = harness.namespace(p.parse_args([]))
    assert (defaults.repeats, defaults.warmup, defaults.threads, defaults.json) == (3, 1, None, False)
    harness.check_timing_args(defaults)
    for argv, msg in ((["--repeats", "0"], "--repeats must be >= 1, got 0"), (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
                      (["--threads", "0"], "--threads must be >= 1, got 0")):
        with pytest.raises(TTScaleError, match=msg):
            harness.check_timing_args(harness.namespace(p.parse_args(argv)))


def test_timed_uses_the_clock():
    clock = FakeClock()

    def work():
        clock.now += 2.5
        return 7
    assert harness.timed(work, clock) == (7, 2.5)


def test_envelope_and_finish_print_json_last():
    env = harness.envelope("fake", {"n": 2}, harness.device_info("cpu"), harness.timing_block(1, 3), {"x": 1.0})
    assert list(env) == ["benchmark", "config", "versions", "device", "timing", "figures"]
    assert env["benchmark"] == "fake" and env["config"] == {"n": 2} and env["figures"] == {"x": 1.0}
    assert set(env["versions"]) == {"torch", "transformers", "python"}
    assert set(env["device"]) == {"type", "threads", "cpu"} and env["device"]["type"] == "cpu" and env["device"]["threads"] >= 1
    assert env["timing"] == {"warmup": 1, "repeats": 3, "order": "interleaved", "statistic": "min"}
    out = io.StringIO()
    assert harness.finish(env, json_only=False, table=lambda r: print("a table", file=out), out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "a table" and json.loads(lines[-1]) == env
    out = io.StringIO()
    harness.finish(env, json_only=True, table=lambda r: print("a table", file=out), out=out)
    assert out.getvalue().splitlines() == [json.dumps(env)]


def test_run_main_turns_a_refusal_into_one_sentence(capsys):
    from benchmarks.speed.harness import run_main

    def add(p):
        p.add_argument("--n", type=int, default=1)

    def main(args):
        if args.n < 1:
            raise TTScaleError(f"--n must be >= 1, got {args.n}")
        print("ran")
        return 0

    assert run_main("doc line\n", add, main, ["--n", "0"]) == 2
    assert capsys.readouterr().err == "ttscale: error: --n must be >= 1, got 0\n"
    assert run_main("doc line\n", add, main, []) == 0 and capsys.readouterr().out == "ran\n"
