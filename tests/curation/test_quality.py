"""The quality filter: each rule drops with its reason code, the first failing rule decides, every rule can be
switched or tuned, and real benchmark questions lose nothing but their figures."""

import os

import pytest
from conftest import SHARED_DATA

from curation.pool import iter_pool
from curation.quality import REASONS, QualityConfig, check, quality_filter, unbalanced_braces, unbalanced_dollars
from curation.schema import Question
from engine.errors import ConfigError, TTScaleError

GOOD = "What is the remainder when $2^{10}$ is divided by 7?"


def _sample(**kw):
    return {"thinking": "Let me compute. 1024 = 7 * 146 + 2.", "attempt": "The answer is $\\boxed{2}$.", "answer": "2",
            "thinking_tokens": 20, "finish_reason": "stop", "model": "m", **kw}


def _q(text=GOOD, traces=None, answer="2", solution="", **kw):
    meta = {"traces": traces} if traces is not None else {}
    return Question(text, solution=solution, answer=answer, source="t", metadata=meta, **kw)


def _reason(q, **config):
    got = check(q, QualityConfig(**config))
    return got and got[0]


@pytest.mark.parametrize("question, reason", [
    (_q(), None),
    (_q(traces={"samples": [_sample()]}), None),
    (_q(traces={"samples": [], "error": "429 Too Many Requests"}), "generation_error"),
    (_q(traces={"samples": [_sample(finish_reason="error", answer=None)]}), "generation_error"),
    (_q(traces={"samples": [_sample(attempt="API Error: 500 Internal Server Error", answer=None)]}), "generation_error"),
    (_q("What is 2 \ufffd 3 plus one?"), "bad_encoding"),
    (_q(solution="caf\udce9 costs"), "bad_encoding"),
    (_q("What is 2 + 3?\x00 Think."), "bad_encoding"),
    (_q("[asy]draw((0,0)--(1,1));[/asy] Find the slope."), "figure"),
    (_q("![Image](http://x/y.png) What is the area?"), "figure"),
    (_q('<img src="a.png"> How many squares are there?'), "figure"),
    (_q("In the figure below, what is the measure of angle ABC?"), "figure"),
    (_q("Why?"), "too_short"),
    (_q("Compute " + "one plus " * 3000 + "one."), "too_long"),
    (_q("Find $x if $x + 1 = 3$ holds."), "unbalanced_dollars"),
    (_q("Find $\\frac{1}{2$ of six."), "unbalanced_braces"),
    (_q("Evaluate } twice { please now."), "unbalanced_braces"),
    (_q("$$\\{\\}[]()^^^***+++---===$$ 1?"), "non_text"),
    (_q(answer=""), None),
    (_q(traces={"samples": [_sample(answer=None), _sample(answer="")]}), "trace_no_answer"),
    (_q(traces={"samples": [_sample(answer=None), _sample(answer="2")]}), None),
])
def test_each_rule_and_its_reason(question, reason):
    assert _reason(question) == reason
    assert reason is None or reason in REASONS


def test_currency_and_escaped_dollars_are_not_math():
    for ok in ("A shirt costs $20 and a hat costs $5.", "A pen costs $3.50.", "Mia pays \\$4 for $x$ apples.",
               "If $5$ apples cost $2.50 in total, what does one cost?", "$$x^2 = 4$$ solve for $x$."):
        assert unbalanced_dollars(ok) is None, ok
    assert unbalanced_dollars("Let $x = 5 be a number.") == "1 unescaped $ (odd)"
    assert unbalanced_braces("Let \\{1, 2\\} be a set with {nested {braces}}.") is None


def test_the_first_failing_rule_decides():
    q = _q("[asy] \ufffd?", traces={"samples": [_sample(answer=None)]})
    assert _reason(q) == "bad_encoding"
    assert _reason(q, drop_bad_encoding=False) == "figure"
    assert _reason(q, drop_bad_encoding=False, drop_figures=False) == "too_short"
    assert _reason(q, drop_bad_encoding=False, drop_figures=False, min_chars=0) == "trace_no_answer"
    assert _reason(q, drop_bad_encoding=False, drop_figures=False, min_chars=0, require_trace_answer=False) is None


def test_every_rule_is_configurable():
    assert _reason(_q(answer=""), require_answer=True) == "no_answer"
    assert _reason(_q("Look at the chart: how tall is it?"), figure_markers=("the chart",)) == "figure"
    assert _reason(_q("In the figure below, find x.")) == "figure"
    assert _reason(_q("In the figure below, find x."), figure_markers=("[asy]",)) is None
    assert _reason(_q("Find $x if $x + 1 = 3$ holds."), check_math_delimiters=False) is None
    assert _reason(_q(GOOD), max_chars=20) == "too_long"
    assert _reason(_q("$$\\{\\}[]()^^^***+++---===$$ 1?"), min_text_fraction=0) is None
    err = _q(traces={"samples": [_sample(attempt="Rate limit exceeded, retry later")]})
    assert _reason(err) == "generation_error" and _reason(err, drop_errors=False) is None
    assert _reason(err, error_markers=("quota",)) is None
    deep = _q(traces={"samples": [_sample(thinking="Let me think. " * 40 + "Not an API error, just words.")]})
    assert _reason(deep) is None  # markers count only at the start of a trace


def test_filter_records_every_drop_in_order():
    qs = [_q(), _q("Why?"), _q("In the diagram below, name the point.", answer="A"), _q(GOOD + " Explain.")]
    drops = []
    kept = list(quality_filter(qs, None, drops.append))
    assert kept == [qs[0], qs[3]]
    assert [(d.id, d.stage, d.reason) for d in drops] == [(qs[1].id, "quality", "too_short"), (qs[2].id, "quality", "figure")]
    assert drops[1].detail == "the question has 'in the diagram'" and drops[1].source == "t"


def test_malformed_traces_and_configs_are_refused():
    with pytest.raises(TTScaleError, match="metadata\\['traces'\\] must be a mapping"):
        check(_q(traces=["not", "a", "dict"]), QualityConfig())
    for kwargs, field in (({"min_chars": -1}, "min_chars"), ({"min_chars": 50, "max_chars": 10}, "max_chars"),
                          ({"min_text_fraction": 1.5}, "min_text_fraction"), ({"figure_markers": ("",)}, "figure_markers")):
        with pytest.raises(ConfigError) as err:
            QualityConfig(**kwargs)
        assert err.value.field == field


def test_benchmark_questions_lose_only_their_figures():
    d = next((d for d in (os.environ.get("TTSCALE_DATA"), SHARED_DATA) if d and os.path.isfile(os.path.join(d, "math500.jsonl"))), None)
    if d is None:
        pytest.skip("math500.jsonl is not in $TTSCALE_DATA or ../shared/data (a test fixture only)")
    drops = []
    kept = list(quality_filter(iter_pool([os.path.join(d, "math500.jsonl")]), QualityConfig(require_answer=True), drops.append))
    assert {x.reason for x in drops} == {"figure"} and all("[asy]" in x.detail for x in drops)
    assert len(kept) + len(drops) == 500 and len(drops) < 60
