"""Selection: s1's rule (uniform domain, then 2^-rank by trace length) checked statistically with fixed seeds; the
ablations; deterministic ties; a domain running out; refusals."""

import random
from collections import Counter

import pytest

from curation.schema import Question
from curation.select import SelectionConfig, draw_rank, rank_by_length, select, select_diverse, trace_length
from engine.errors import ConfigError, TTScaleError

# chi-square critical values at p = 0.001 (df -> value): a correct sampler fails one check in a thousand seeds,
# and the seeds are fixed, so the test is deterministic.
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32, 8: 26.12, 9: 27.88}


def chi_square(observed: list[int], expected: list[float]) -> float:
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected))


def q(text, domain="11", length=100, via="difficulty"):
    meta = {"domain": {"code": domain, "name": "", "method": "test"}}
    if via == "difficulty":
        meta["difficulty"] = {"trace_tokens": length}
    elif via == "traces":
        meta["traces"] = [{"thinking": "t", "thinking_tokens": length}, {"thinking_tokens": 1}]
    return Question(text, metadata=meta)


def pool(sizes: dict[str, int]) -> list[Question]:
    return [q(f"{d} question {i}", d, length=1000 - i) for d, n in sizes.items() for i in range(n)]


def test_trace_length_fallback_order():
    assert trace_length(q("a", length=7)) == 7
    assert trace_length(q("b", length=9, via="traces")) == 9                   # the first trace counts
    both = q("c", length=5, via="traces")
    both.metadata["difficulty"] = {"trace_tokens": 11}
    assert trace_length(both) == 11                                           # difficulty's first
    assert trace_length(Question("d", metadata={"traces": {"thinking_tokens": 3}})) == 3
    assert trace_length(Question("e", metadata={"traces": {"traces": [{"thinking_tokens": 4}]}})) == 4
    assert trace_length(Question("f")) is None
    assert trace_length(Question("g", metadata={"difficulty": {"trace_tokens": -1}})) is None


def test_domain_choice_is_uniform_over_domains_not_questions():
    sizes = {"05": 5, "11": 40, "51": 200}                                    # very unequal domains
    questions = pool(sizes)
    first = Counter(select_diverse(questions, 1, random.Random(seed))[0][1] for seed in range(3000))
    observed = [first[d] for d in sizes]
    stat = chi_square(observed, [1000.0] * 3)
    assert stat < CHI2_999[2], (observed, stat)


def test_rank_frequencies_follow_two_to_the_minus_rank():
    n, runs = 10, 4000
    questions = [q(f"x{i}", "11", length=10 * (i + 1)) for i in range(n)]   # x9 is the longest
    ranked = rank_by_length(questions)
    assert [x.question for x in ranked][:3] == ["x9", "x8", "x7"]
    position = {x.id: r for r, x in enumerate(ranked)}
    counts = Counter(position[select_diverse(questions, 1, random.Random(seed))[0][0].id] for seed in range(runs))
    total = 2 - 2 ** (1 - n)
    expected = [runs * 2 ** -r / total for r in range(n)]
    # pool the tail so that every bin expects at least 5
    observed = [counts[r] for r in range(7)] + [sum(counts[r] for r in range(7, n))]
    expected = expected[:7] + [sum(expected[7:])]
    stat = chi_square(observed, expected)
    assert stat < CHI2_999[len(observed) - 1], (observed, [round(e) for e in expected], stat)
    assert counts[0] > counts[1] > counts[2] > counts[3]


def test_draw_rank_matches_the_weights():
    rng = random.Random(1)
    got = Counter(draw_rank(3, rng) for _ in range(7000))
    stat = chi_square([got[0], got[1], got[2]], [4000.0, 2000.0, 1000.0])
    assert stat < CHI2_999[2]
    assert draw_rank(1, rng) == 0
    assert all(0 <= draw_rank(2000, rng) < 2000 for _ in range(100))       # no underflow trouble in huge domains
    with pytest.raises(TTScaleError, match="among 0 questions"):
        draw_rank(0, rng)


def test_a_domain_that_runs_out_leaves_the_draw():
    questions = [q("only one", "05", 50)] + pool({"11": 30, "51": 30})
    for seed in range(200):
        picks = select_diverse(questions, 25, random.Random(seed))
        domains = [d for _, d, _ in picks]
        assert domains.count("05") <= 1
        assert len({x.id for x, _, _ in picks}) == 25
    # taking everything empties every domain in turn
    everything = select_diverse(questions, len(questions), random.Random(0))
    assert sorted(x.id for x, _, _ in everything) == sorted(x.id for x in questions)
    # after the one-question domain is gone, the others share the draws evenly
    later = Counter()
    for seed in range(1500):
        picks = select_diverse(questions, 4, random.Random(seed))
        if picks[0][1] == "05":
            later.update(d for _, d, _ in picks[1:])
    assert later["05"] == 0
    stat = chi_square([later["11"], later["51"]], [sum(later.values()) / 2] * 2)
    assert stat < CHI2_999[1]


def test_ties_are_broken_by_id_and_runs_are_reproducible():
    questions = [q(f"tie {i}", "11", length=100) for i in range(6)]
    assert [x.id for x in rank_by_length(questions)] == sorted(x.id for x in questions)
    shuffled = questions[::-1]
    a = select(questions, SelectionConfig(k=4, seed=3))
    ids_a = [x.id for x in a]
    for x in questions:
        x.metadata.pop("selection", None)
    b = select(shuffled, SelectionConfig(k=4, seed=3))
    assert ids_a == [x.id for x in b]                                        # input order does not matter
    assert any([x.id for x in select(questions, SelectionConfig(k=4, seed=s))] != ids_a for s in range(4, 10))


def test_select_records_every_other_question_and_stamps_the_chosen():
    questions = pool({"05": 10, "11": 10})
    drops = []
    chosen = select(questions, SelectionConfig(k=5, seed=0), record=drops.append)
    assert len(chosen) == 5 and len(drops) == 15
    assert {d.reason for d in drops} == {"not_selected"} and {d.stage for d in drops} == {"selection"}
    assert {d.id for d in drops}.isdisjoint(x.id for x in chosen)
    assert [x.metadata["selection"]["order"] for x in chosen] == list(range(5))
    s = chosen[0].metadata["selection"]
    assert s["method"] == "diverse" and s["domain"] in ("05", "11") and s["trace_tokens"] == trace_length(chosen[0])


def test_longest_and_random_ablations():
    questions = pool({"05": 10, "11": 10})
    longest = select(questions, SelectionConfig(k=4, method="longest"))
    lengths = sorted((trace_length(x) for x in questions), reverse=True)
    assert [trace_length(x) for x in longest] == lengths[:4]
    rnd = select(questions, SelectionConfig(k=20, method="random", seed=5))
    assert sorted(x.id for x in rnd) == sorted(x.id for x in questions)
    no_lengths = [Question(f"bare {i}") for i in range(5)]
    assert len(select(no_lengths, SelectionConfig(k=2, method="random"))) == 2  # random needs neither length nor domain


def test_refusals():
    questions = pool({"11": 3})
    with pytest.raises(ConfigError, match="k is 4 but only 3 questions survived the earlier stages; lower k to at most 3"):
        select(questions, SelectionConfig(k=4))
    with pytest.raises(ConfigError, match="only 1 question survived"):
        select(questions[:1], SelectionConfig(k=2, method="random"))
    with pytest.raises(TTScaleError, match="no metadata\\['domain'\\]; run the diversity stage"):
        select([Question("no domain", metadata={"difficulty": {"trace_tokens": 3}})], SelectionConfig(k=1))
    with pytest.raises(TTScaleError, match="has no trace length"):
        select([Question("no length", metadata={"domain": {"code": "11"}})], SelectionConfig(k=1))
    with pytest.raises(TTScaleError, match="occurs twice"):
        select([questions[0], questions[0]], SelectionConfig(k=1))
    for bad in ({"k": 0}, {"k": True}, {"method": "diverse1K"}, {"seed": -1}):
        with pytest.raises(ConfigError):
            SelectionConfig(**bad)


def test_every_config_field_has_help():
    from dataclasses import fields
    assert all(f.metadata.get("help") for f in fields(SelectionConfig))
