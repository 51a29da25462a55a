"""Metrics against hand-computed values: Wilson intervals and s1's Control / Scaling / Performance."""

import math

import pytest

from benchmarks.eval.metrics import Run, accuracy, control, performance, scaling, scaling_metrics, wilson_interval
from engine.errors import TTScaleError


# Wilson by hand: center = (p + z²/2n)/(1 + z²/n), half = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²), z = 1.96.
def test_wilson_half_is_symmetric_around_the_shifted_center():
    lo, hi = wilson_interval(5, 10)
    # z² = 3.8415, 1 + z²/n = 1.38415, half = 1.96/1.38415 · sqrt(0.025 + 0.0096037) = 0.26341
    assert lo == pytest.approx(0.23659, abs=1e-5)
    assert hi == pytest.approx(0.76341, abs=1e-5)


def test_wilson_at_zero_and_all_correct_is_not_empty():
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.38415 / 1.38415, abs=1e-5)  # (z²/n) / (1 + z²/n)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(1 - 0.38415 / 1.38415, abs=1e-5)


def test_accuracy_counts_and_interval():
    acc = accuracy([True, False, True, True])
    assert (acc.correct, acc.total, acc.value) == (3, 4, 0.75)
    assert acc.low < 0.75 < acc.high
    assert (acc.low, acc.high) == wilson_interval(3, 4)


def test_accuracy_refuses_empty_and_bad_counts():
    with pytest.raises(TTScaleError, match="no samples"):
        accuracy([])
    with pytest.raises(TTScaleError, match="between 0 and total"):
        wilson_interval(11, 10)
    with pytest.raises(TTScaleError, match="at least one sample"):
        wilson_interval(0, 0)


# s1 §3.2 ---------------------------------------------------------------------------------------------
def test_scaling_is_the_mean_slope_over_pairs():
    runs = [Run(100, 0.2), Run(400, 0.5), Run(200, 0.4)]  # order does not matter
    # (100→200) 0.2/100 = 0.002; (100→400) 0.3/300 = 0.001; (200→400) 0.1/200 = 0.0005; mean = 0.0035/3
    assert scaling(runs) == pytest.approx(0.0035 / 3)
    m = scaling_metrics(runs)
    assert m.scaling_x100 == pytest.approx(0.35 / 3)  # percentage points per thinking token
    assert m.performance == 0.5 and m.runs == 3 and m.control is None


def test_scaling_negative_for_inverse_scaling():
    assert scaling([Run(100, 0.6), Run(300, 0.2)]) == pytest.approx(-0.4 / 200)


def test_scaling_skips_pairs_with_equal_a():
    runs = [Run(100, 0.2), Run(100, 0.4), Run(300, 0.6)]
    # (100,.2)→(300,.6): 0.002; (100,.4)→(300,.6): 0.001; the (100,100) pair has no slope: mean = 0.0015
    assert scaling(runs) == pytest.approx(0.0015)


def test_one_run_or_all_equal_a_has_no_slope():
    assert scaling([Run(256, 0.3)]) is None
    assert scaling([Run(256, 0.3), Run(256, 0.5)]) is None
    m = scaling_metrics([Run(256, 0.3)], a_max=512)
    assert (m.scaling, m.scaling_x100, m.performance, m.control) == (None, None, 0.3, 1.0)


def test_control_with_per_run_and_global_bounds():
    runs = [Run(90, 0.1, a_max=100), Run(210, 0.2, a_max=200), Run(300, 0.3, a_max=400)]
    assert control(runs) == pytest.approx(2 / 3)  # 210 > 200 breaks its own cap
    plain = [Run(90, 0.1), Run(210, 0.2), Run(300, 0.3)]
    assert control(plain) is None  # nothing to control against
    assert control(plain, a_max=200) == pytest.approx(1 / 3)
    assert control(plain, a_min=100, a_max=400) == pytest.approx(2 / 3)  # 90 < a_min
    # a run's own bound wins over the global one
    assert control([Run(300, 0.3, a_max=400)], a_max=200) == 1.0


def test_performance_is_max_accuracy():
    assert performance([Run(1, 0.1), Run(2, 0.567), Run(3, 0.5)]) == 0.567


def test_runs_refuse_percentages_and_empty_lists():
    with pytest.raises(TTScaleError, match="fraction in \\[0, 1\\]"):
        Run(100, 56.7)
    with pytest.raises(TTScaleError, match="at least one run"):
        scaling_metrics([])
    with pytest.raises(TTScaleError, match="finite number"):
        Run(math.nan, 0.5)



def test_wilson_bounds_always_hold_the_proportion_exactly():
    """0/100 rounds center - half to ~3e-18 (a 'negative' error bar matplotlib refuses); the bounds now clamp to p."""
    for total in (1, 3, 10, 30, 100, 500):
        for correct in range(total + 1):
            lo, hi = wilson_interval(correct, total)
            assert lo <= correct / total <= hi
    assert wilson_interval(0, 100)[0] == 0.0
