"""Selection, sharing, answer choice, configs and the search tree: pure Python, no model (STYLE §7)."""

import json
import math

import pytest

from engine.errors import TTScaleError
from engine.search.config import SearchConfig
from engine.search.select import ANSWER_RULES, Candidate, choose_answer, choose_index, outcome, select, share, votes
from engine.search.tree import SearchTree


def test_select_keeps_best_unfinished_per_group_and_drops_duplicates():
    cands = [Candidate(0, 0.4, key="a"), Candidate(0, 0.9, key="b"), Candidate(0, 0.2, finished=True, key="c"),
             Candidate(1, 0.7, key="d"), Candidate(1, 0.8, key="d")]
    sel = select(cands, keep=1)
    assert (sel.kept, sel.finished, sel.pruned, sel.duplicates) == ([1, 3], [2], [0], [4])
    assert [sel.status(i) for i in range(5)] == ["pruned", "kept", "finished", "kept", "duplicate"]
    # the same text in another group is not a duplicate; without filtering the better copy wins
    assert select([Candidate(0, 0.1, key="x"), Candidate(1, 0.2, key="x")], keep=1).kept == [0, 1]
    assert select(cands, keep=1, filter_duplicates=False).kept == [1, 4]


def test_beam_and_dvts_differ_only_in_grouping():
    scores = [0.9, 0.8, 0.1, 0.2, 0.5, 0.6, 0.3, 0.4]
    beam = select([Candidate(0, s) for s in scores], keep=2)                    # N = 8, M = 4: one group keeps 2
    dvts = select([Candidate(i // 4, s) for i, s in enumerate(scores)], keep=1)  # N/M = 2 subtrees keep 1 each
    assert beam.kept == [0, 1] and dvts.kept == [0, 5]
    # DVTS with one subtree is beam search with N = M: the configs plan the same (width, keep) for the one group,
    # so both strategies make the same select call
    [(width, keep)] = SearchConfig("beam", n=4, beam_width=4).groups()
    assert SearchConfig("dvts", n=4, beam_width=4).groups() == [(width, keep)] == [(4, 1)]
    assert select([Candidate(0, s) for s in scores[:width]], keep=keep).kept == [0]


def test_select_ties_and_missing_scores():
    sel = select([Candidate(0, None), Candidate(0, 0.5), Candidate(0, math.nan), Candidate(0, 0.5)], keep=2)
    assert sel.kept == [1, 3] and sel.pruned == [0, 2]           # ties go to the earlier; None/NaN rank last
    assert select([Candidate(0, 0.3)], keep=5).kept == [0]     # fewer candidates than keep: all survive
    assert select([Candidate(0, 0.3, finished=True)], keep=1).kept == []
    with pytest.raises(TTScaleError, match="at least one"):
        select([Candidate(0, 0.3)], keep=0)


def test_select_ties_go_to_the_earlier_candidate():
    sel = select([Candidate(0, 0.2), Candidate(0, 0.7), Candidate(0, 0.7), Candidate(0, 0.7)], keep=2)
    assert (sel.kept, sel.pruned) == ([1, 2], [0, 3])            # three tie for two places: the later one goes
    assert select([Candidate(0, 0.5), Candidate(0, 0.5)], keep=1).kept == [0]
    assert select([Candidate(0, None), Candidate(0, math.nan)], keep=1).kept == [0]   # both rank last: still the earlier
    dvts = select([Candidate(g, 0.5) for g in (0, 1, 0, 1)], keep=1)
    assert (dvts.kept, dvts.pruned) == ([0, 1], [2, 3])          # per group too


def test_share_refills_the_group_width():
    assert share(2, 8) == [4, 4]                  # every survivor expands M
    assert share(3, 8) == [3, 3, 2]               # fewer survivors: the first ones get one more
    assert share(1, 4) == [4] and share(4, 4) == [1, 1, 1, 1] and share(0, 4) == []
    with pytest.raises(TTScaleError):
        share(5, 4)


def test_choose_answer_rules():
    answers = ["5", "6", "6", None, "5.0"]
    scores = [0.9, 0.3, 0.35, 0.99, 0.2]
    assert choose_answer(answers, scores, "best") == "5"         # the best-scored completion has no answer: skipped
    assert choose_answer(answers[1:4], scores[1:4], "best") == "6"
    assert choose_answer([None, ""], [0.5, 0.7], "best") is None
    assert choose_answer(answers, scores, "weighted") == "5"     # 5 and 5.0 are one answer: 0.9 + 0.2 > 0.65
    assert choose_answer(["5", "6", "6"], [0.9, 0.3, 0.35], "majority") == "6"
    assert choose_answer(["5", "6", "6"], [None, None, None], "best") == "6"   # no scores: majority
    assert choose_answer([], [], "weighted") is None
    assert votes(["5", "6", "6"], [0.5, 0.3, 0.35]) == {"best": "5", "majority": "6", "weighted": "6"}
    with pytest.raises(TTScaleError, match="one score per completion"):
        choose_answer(["5", "6"], [1.0], "best")
    with pytest.raises(TTScaleError, match="unknown"):
        choose_answer(["5"], [1.0], "median")


def test_choose_answer_ties_go_to_the_earlier_completion():
    assert choose_answer(["7", "8", "9"], [0.2, 0.6, 0.6], "best") == "8"
    assert choose_answer([None, "7", "8"], [0.6, 0.6, 0.6], "best") == "7"   # the earliest that has an answer
    assert choose_answer(["8", "7"], [None, None], "best") == "8"            # no scores: majority's tie rule
    assert choose_answer(["6", "5", "5", "6"], [None] * 4, "majority") == "6"
    assert choose_answer(["6", "5", "5", "6"], [0.1, 0.4, 0.1, 0.4], "weighted") == "6"   # 0.5 each
    assert votes(["2", "1"], [0.3, 0.3]) == {"best": "2", "majority": "2", "weighted": "2"}


def test_config_groups():
    assert SearchConfig("beam", n=16, beam_width=4).groups() == [(16, 4)]
    assert SearchConfig("dvts", n=16, beam_width=4).groups() == [(4, 1)] * 4
    assert SearchConfig("best-of-n", n=3).groups() == [(1, 1)] * 3
    assert SearchConfig("majority", n=3, beam_width=4).groups() == [(1, 1)] * 3   # M only matters to beam and dvts
    assert not SearchConfig("majority").uses_prm and SearchConfig("weighted").answer_rule == "weighted"


@pytest.mark.parametrize("kw, message", [
    (dict(n=0), "n must be an integer >= 1, got 0"),
    (dict(strategy="beam", n=6, beam_width=4), "n 6 is not divisible by beam_width 4"),
    (dict(strategy="dvts", n=2, beam_width=4), "not divisible"),
    (dict(strategy="greedy"), "strategy 'greedy' is unknown"),
    (dict(strategy="best-of-n", lookahead=1), "only applies to beam and dvts"),
    (dict(agg="max"), "agg 'max' is unknown"),
    (dict(beam_width=0), "beam_width must be"),
    (dict(max_step_tokens=0), "max_step_tokens must be"),
    (dict(delimiter=""), "non-empty"),
])
def test_config_refusals(kw, message):
    with pytest.raises(TTScaleError, match=message.replace("(", r"\(")) as err:
        SearchConfig(**kw)
    assert "--" not in str(err.value)  # the library names fields; the CLI renders them as flags


def test_tree_bookkeeping_and_json(tmp_path):
    tree = SearchTree()
    root = tree.add_root("q", [1, 2, 3], "prompt")
    a = tree.add(root.id, [4, 5], "a\n\n", "delimiter", group=0)
    b = tree.add(root.id, [6], "b", "cap", group=0)
    c = tree.add(a.id, [7, 2], "c", "stop", group=0)
    look = tree.add(b.id, [8], "d", "delimiter", kind="lookahead")
    for node, status in ((a, "kept"), (b, "pruned"), (c, "finished")):
        tree.mark(node.id, status)
    tree.check()
    assert tree.tokens() == 3 + 2 + 1 + 2 + 1 and tree.tokens(0) == 9
    assert tree.step_texts(c.id) == ["a\n\n", "c"] and tree.path_tokens(c.id) == [4, 5, 7, 2]
    assert c.finished and not a.finished and look.status == "lookahead" and tree.count("finished") == 1
    assert tree.write(str(tmp_path / "t.json")) == 5
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["problems"] == [{"question": "q", "root": 0}]
    assert data["nodes"][3] == {"id": 3, "parent": 1, "problem": 0, "depth": 2, "tokens": [7, 2], "text": "c", "kind": "step",
                                "group": 0, "status": "finished", "end": "stop", "step_scores": None, "score": None, "children": []}
    open_node = tree.add(c.id, [9], "e", "delimiter")
    with pytest.raises(AssertionError, match="never selected"):
        tree.check()
    tree.check(done=False)
    with pytest.raises(TTScaleError, match="status"):
        tree.mark(open_node.id, "alive")
    with pytest.raises(TTScaleError, match="no tokens"):
        tree.add(root.id, [], "", "stop")
    with pytest.raises(TTScaleError, match="cannot write"):
        tree.write(str(tmp_path / "no" / "such" / "dir.json"))


def test_choose_index_names_the_completion_that_carries_the_answer():
    from engine.search.select import choose_index

    # The best-scored completion has no answer: the chosen completion is the best one that has one (never index 0).
    answers, scores = [None, "4", "5"], [0.9, 0.2, 0.7]
    assert choose_index(answers, scores, "best") == 2 and choose_answer(answers, scores, "best") == "5"
    # Majority: the first member of the winning group, which may come after a lone earlier answer.
    assert choose_index(["7", "3", "3"], [None] * 3, "majority") == 1
    assert choose_index([None, None], [0.5, 0.5], "weighted") is None
    for rule in ("best", "majority", "weighted"):
        for answers, scores in ((["1", "2", "2", None], [0.1, 0.3, 0.2, 0.9]), (["a", None, "a"], [None, None, None])):
            i = choose_index(answers, scores, rule)
            assert answers[i] == choose_answer(answers, scores, rule)


def test_outcome_groups_as_voting_does_and_picks_what_the_rules_pick():
    answers = ["\\frac{1}{2}", "3", None, "0.5", "3", ""]
    scores = [0.9, 0.4, 0.95, 0.2, 0.5, None]
    for rule in ANSWER_RULES:
        o = outcome(answers, scores, rule)
        assert o["chosen"] == choose_index(answers, scores, rule) and o["answer"] == answers[o["chosen"]]
        assert o["votes"] == votes(answers, scores)
        [half, three, none] = o["answers"]                       # 1/2 and 0.5 are one group, as majority counts them
        assert (half["members"], three["members"], none["members"]) == ([0, 3], [1, 4], [2, 5])
        assert (half["count"], half["best"], none["answer"], none["best"]) == (2, 0.9, None, 0.95)
        assert abs(half["weight"] - 1.1) < 1e-9 and abs(three["weight"] - 0.9) < 1e-9
        assert [r for e in o["answers"] for r in e["picked_by"]] == [r for r in ANSWER_RULES if choose_index(answers, scores, r) is not None]
    assert outcome([None, None], [0.1, 0.7], "best")["chosen"] == 1   # no answer anywhere: the best-scored completion
    assert outcome([], [], "majority") == {"answer": None, "chosen": None, "votes": dict.fromkeys(ANSWER_RULES), "answers": []}
    with pytest.raises(TTScaleError, match="answer rule 'nope' is unknown"):
        outcome(["1"], [0.5], "nope")


def test_a_tree_records_an_outcome_in_node_ids():
    tree = SearchTree()
    root = tree.add_root("q", [1, 2], "q")
    a, b = tree.add(root.id, [3], "x", "stop"), tree.add(root.id, [4], "y", "stop")
    tree.set_outcome(0, [b.id, a.id], outcome(["7", None], [0.8, 0.3], "best"), strategy="best-of-n")
    prob = tree.problems[0]
    assert (prob["chosen"], prob["completions"], prob["strategy"]) == (b.id, [b.id, a.id], "best-of-n")
    assert [e["nodes"] for e in prob["answers"]] == [[b.id], [a.id]] and "members" not in prob["answers"][0]
    with pytest.raises(TTScaleError, match="problem 3 does not exist"):
        tree.set_outcome(3, [], outcome([], [], "best"))
