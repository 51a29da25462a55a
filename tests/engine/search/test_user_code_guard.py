"""User code in a guard: a verifier or PRM that raises, has the wrong signature, or returns the wrong shape or
non-finite scores is refused in one sentence naming it; its outputs are checked before a search uses them."""

import math

import pytest

from engine.errors import TTScaleError
from engine.search.prm import PRM, VerifierPRM, check_scores

Q = "What is 2 + 3?"


def raises(question, steps):
    raise ZeroDivisionError("division by zero")


def one_arg(question):
    return [1.0]


def returns_nan(question, steps):
    return [math.nan] * len(steps)


def returns_short(question, steps):
    return [1.0]


def returns_text(question, steps):
    return "yes"


def returns_big(question, steps):
    return [2.5] * len(steps)


def good(question, steps):
    return [True] + [0.5] * (len(steps) - 1)


def test_wrong_signature_is_refused_at_load():
    with pytest.raises(TTScaleError, match=r"^verifier one_arg must take \(question, steps\).*its signature is one_arg\(question\)"):
        VerifierPRM(one_arg)


@pytest.mark.parametrize("fn, message", [
    (raises, "verifier raises raised ZeroDivisionError: division by zero on question 'What is 2 + 3?' with 2 step(s)"),
    (returns_nan, "verifier returns_nan returned the score nan for question 'What is 2 + 3?'; scores must be finite numbers in [0, 1]"),
    (returns_big, "returned the score 2.5"),
    (returns_short, "verifier returns_short returned [1.0] for 2 steps of question"),
    (returns_text, "verifier returns_text returned 'yes' for 2 steps"),
])
def test_bad_verifier_results_are_one_sentence(fn, message):
    with pytest.raises(TTScaleError) as err:
        VerifierPRM(fn).score(Q, [["a", "b"]])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_good_verifier_passes_and_bools_become_floats():
    assert VerifierPRM(good).score(Q, [["a", "b"], ["c"]]) == [[1.0, 0.5], [1.0]]


class Broken(PRM):
    name = "broken"

    def __init__(self, out):
        super().__init__()
        self.out = out

    def score(self, question, candidates):
        return self.out


@pytest.mark.parametrize("out, message", [
    ([[0.5]], "returned [[0.5]] for 2 candidates"),
    ([[0.5], [0.1, 0.2]], "returned [0.1, 0.2] for 1 steps of question"),
    ([[0.5], [float("inf")]], "returned the score inf"),
    ([[0.5], ["x"]], "it must return one score (float or bool) per step"),
])
def test_any_prm_output_is_checked_before_use(out, message):
    prm = Broken(out)
    candidates = [["s1"], ["s2"]]
    with pytest.raises(TTScaleError, match="^PRM broken ") as err:
        check_scores(prm, Q, candidates, prm.score(Q, candidates))
    assert message in str(err.value)
    assert check_scores(prm, Q, candidates, [[0.5], [1]]) == [[0.5], [1.0]]


def test_search_cli_names_a_raising_verifier(tmp_path, capsys, tiny_model_dir, monkeypatch):
    import sys

    from engine.cli.main import main

    mod = tmp_path / "my_checks.py"
    mod.write_text("def explode(question, steps):\n    raise RuntimeError('bad step parser')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["search", "What is 2 + 3?", "--model", tiny_model_dir, "--strategy", "best-of-n", "--n", "2",
                 "--max-steps", "1", "--max-step-tokens", "4", "--verifier", "my_checks:explode", "--seed", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "verifier my_checks:explode raised RuntimeError: bad step parser" in err
    sys.modules.pop("my_checks", None)
