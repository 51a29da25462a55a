"""The budget-forcing state machine alone: plain Python, made-up token ids, no model and no torch.

A scripted "model" says which token it would pick at each step; :func:`drive` plays the processor's part (answer
the machine's end check, apply its action, observe the result), so every budget rule can be checked token by token.

Ids used here: delimiter ``(100,)`` (or ``(100, 101, 102)``), EOS 2 and end-of-turn 3, cap prefix 10,
answer prefix ``(10, 20, 21)``, continuations ``(30,)`` and ``(31, 32)``; ordinary thinking/answer tokens are >= 40.
"""

import os
import subprocess
import sys

import pytest
from conftest import REPO

from engine.errors import TTScaleError
from engine.logits.budget_state import ANSWER, ANSWER_PREFIX, DONE, THINKING, BudgetConfig, BudgetMachine, BudgetTokens, EndCheck

ROOT = REPO
EOS, EOT, DELIM = 2, 3, 100
FALLBACK = 99  # what the "sampler" picks when the end tokens are blocked


def toks(think_end=(DELIM,), conts=((30,), (31, 32))):
    return BudgetTokens(think_end=tuple(think_end), cap=(10,) + tuple(think_end), answer_prefix=(10, 20, 21),
                        continuations=conts, end_ids=(EOS, EOT))


def drive(machine, wants, steps=200):
    """Run ``machine`` against a scripted model: ``wants(i, phase)`` is the token it would pick at step i.
    Returns the ids the row received."""
    ends = set(machine.tokens.end_set)
    got = []
    for i in range(steps):
        if machine.phase == DONE:
            break
        want = wants(i, machine.phase)
        check = EndCheck(want in ends, want, 0.5) if machine.needs_end_check() else None
        action = machine.decide(check)
        if action.force is not None:
            tok = action.force
        elif action.block_end and want in ends:
            tok = FALLBACK
        else:
            tok = want
        machine.observe(tok, 0.25)
        got.append(tok)
    machine.finish()
    return got


def reasons(machine):
    return [t[2] for t in machine.state.tokens]


def test_module_does_not_import_torch():
    """The machine's module (and what it imports) loads without torch. ``engine/__init__.py`` itself imports
    ``engine.models`` (torch), so the subprocess stands in an empty ``engine`` package to test this module alone."""
    code = ("import sys, types; pkg = types.ModuleType('engine'); pkg.__path__ = [sys.argv[1]]; sys.modules['engine'] = pkg; "
            "import engine.logits.budget_state as m; "
            "mach = m.BudgetMachine(m.BudgetConfig(min_thinking_tokens=1), m.BudgetTokens((5,), (5,), (), ((6,),), (2,))); "
            "assert mach.decide(m.EndCheck(True, 2, 0.5)).force == 6; "
            "bad = [k for k in ('torch', 'transformers', 'numpy') if k in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "engine")], cwd=ROOT, check=True)


def test_min_budget_replaces_endings_rotating_the_continuations():
    m = BudgetMachine(BudgetConfig(min_thinking_tokens=6, ignore_strs=("a", "b")), toks())
    got = drive(m, lambda i, ph: DELIM if ph == THINKING else EOS)  # it tries to end at every thinking step
    assert got == [30, 31, 32, 30, 31, 32, DELIM, EOS]
    st = m.state
    assert reasons(m) == ["min_budget"] * 6 + ["model_end", None]
    assert [t[1] for t in st.tokens] == ["forced"] * 6 + ["sampled", "sampled"]
    assert [t[3] for t in st.tokens] == [THINKING] * 6 + ["delimiter", "end"]
    assert (st.thinking_tokens, st.answer_tokens, st.injections, st.ignores_used) == (6, 0, 4, 0)
    assert sorted(st.suppressed) == [0, 1, 3, 4]  # at the first token of each injection
    assert st.suppressed[0] == {"token": DELIM, "p_end": 0.5}
    assert st.finish_reason == "stop" and not st.forced_stop


def test_num_ignore_replaces_exactly_k_attempts():
    m = BudgetMachine(BudgetConfig(num_ignore=2), toks(conts=((30,),)))
    got = drive(m, lambda i, ph: (DELIM if i % 3 == 2 else 40 + i) if ph == THINKING else EOS)
    assert got == [40, 41, 30, 43, 44, 30, 46, 47, DELIM, EOS]
    assert reasons(m).count("ignore") == 2 and m.state.ignores_used == 2 == m.state.injections
    assert m.state.thinking_tokens == 8 and m.state.finish_reason == "stop"


def test_ignores_then_min_budget():
    """Ignores are counted first; below the minimum a further attempt is still replaced, as ``min_budget``."""
    m = BudgetMachine(BudgetConfig(num_ignore=1, min_thinking_tokens=3), toks(conts=((30,),)))
    drive(m, lambda i, ph: DELIM if ph == THINKING else EOS)
    assert reasons(m)[:4] == ["ignore", "min_budget", "min_budget", "model_end"]


def test_cap_forces_cap_text_and_answer_prefix_cutting_a_continuation():
    # min 4 with a two-token continuation: the attempt at 3 thinking tokens queues (31, 32); the cap of 4 cuts it.
    m = BudgetMachine(BudgetConfig(min_thinking_tokens=4, max_thinking_tokens=4), toks(conts=((31, 32),)))
    got = drive(m, lambda i, ph: (DELIM if i == 3 else 40 + i) if ph == THINKING else 50 + i)
    assert got[:4] == [40, 41, 42, 31]
    assert got[4:9] == [10, DELIM, 10, 20, 21]  # cap_prefix + delimiter, then answer_sep + "Final Answer:"
    st = m.state
    assert reasons(m)[4:9] == ["max_budget"] * 5
    assert [t[3] for t in st.tokens[4:9]] == ["delimiter", "delimiter", ANSWER_PREFIX, ANSWER_PREFIX, ANSWER_PREFIX]
    assert st.forced_stop and st.thinking_tokens == 4 and st.injections == 1
    assert st.forced_tokens == 5 and st.answer_tokens == len(got) - 9  # the forced text is neither thinking nor answer
    assert m.phase == ANSWER and st.finish_reason == "length"  # the scripted model never ends its answer


def test_cap_without_ending_attempts():
    m = BudgetMachine(BudgetConfig(max_thinking_tokens=3, max_answer_tokens=5), toks())
    got = drive(m, lambda i, ph: 40 + i)
    assert got == [40, 41, 42, 10, DELIM, 10, 20, 21, 48, 49, 50, 51, 52, EOS]
    st = m.state
    # the forced delimiter and answer prefix are counted apart: the model's own answer gets all 5 tokens of its cap
    assert (st.thinking_tokens, st.answer_tokens, st.forced_tokens) == (3, 5, 5)
    assert st.finish_reason == "max_answer" and st.forced_stop


def test_answer_cap_forces_end_of_turn():
    m = BudgetMachine(BudgetConfig(max_thinking_tokens=50, max_answer_tokens=3), toks())
    got = drive(m, lambda i, ph: (DELIM if i == 2 else 40 + i) if ph == THINKING else 60 + i)
    assert got == [40, 41, DELIM, 63, 64, 65, EOS]
    assert reasons(m)[-1] == "max_answer" and m.state.tokens[-1][3] == "end"
    assert (m.state.answer_tokens, m.state.finish_reason) == (3, "max_answer")


def test_passive_watch_relabels_a_delimiter_the_model_wrote():
    m = BudgetMachine(BudgetConfig(max_answer_tokens=5), toks(think_end=(100, 101, 102)))
    script = [40, 100, 101, 102, 41, EOS]
    asked = []
    for tok in script:  # no thinking budget: the machine never asks and never forces
        asked.append(m.needs_end_check())
        assert m.decide().force is None
        m.observe(tok)
    st = m.state
    assert not any(asked)
    assert [t[3] for t in st.tokens] == [THINKING, "delimiter", "delimiter", "delimiter", ANSWER, "end"]
    assert [t[4] for t in st.tokens] == [THINKING] * 4 + [ANSWER, ANSWER]
    assert (st.thinking_tokens, st.answer_tokens, st.finish_reason) == (1, 1, "stop")


def test_passive_eos_in_thinking_stops_there():
    m = BudgetMachine(BudgetConfig(), toks())
    drive(m, lambda i, ph: EOS if i == 2 else 40 + i)
    assert (m.state.finish_reason, m.state.thinking_tokens) == ("stop_in_thinking", 2)


def test_end_of_turn_inside_thinking_becomes_the_delimiter():
    m = BudgetMachine(BudgetConfig(max_thinking_tokens=20), toks(think_end=(100, 101, 102)))
    got = drive(m, lambda i, ph: (EOT if i == 2 else 40 + i) if ph == THINKING else EOS)
    assert got == [40, 41, 100, 101, 102, EOS]
    assert reasons(m)[2:5] == ["end_of_turn"] * 3 and [t[1] for t in m.state.tokens[2:5]] == ["forced"] * 3
    assert m.state.finish_reason == "stop" and not m.state.forced_stop and m.state.thinking_tokens == 2


def test_end_of_turn_inside_thinking_may_stop():
    m = BudgetMachine(BudgetConfig(max_thinking_tokens=20, answer_on_end_of_turn=False), toks())
    got = drive(m, lambda i, ph: EOT if i == 2 else 40 + i)
    assert got == [40, 41, EOT] and m.state.finish_reason == "stop_in_thinking"
    assert m.state.tokens[-1][1:4] == ("sampled", None, "end")


def test_model_chosen_multi_token_delimiter_is_completed():
    m = BudgetMachine(BudgetConfig(max_thinking_tokens=20), toks(think_end=(100, 101, 102)))
    got = drive(m, lambda i, ph: (100 if i == 1 else 40 + i) if ph == THINKING else EOS)
    assert got == [40, 100, 101, 102, EOS]
    assert [t[1:3] for t in m.state.tokens[1:4]] == [("sampled", "model_end"), ("forced", "delimiter"), ("forced", "delimiter")]
    assert m.state.tokens[3][4] == THINKING and m.state.tokens[4][4] == ANSWER


def test_blocked_endings_while_below_nothing():
    """With a budget and a model that would not end, the machine blocks the end tokens and forces nothing."""
    m = BudgetMachine(BudgetConfig(max_thinking_tokens=20), toks())
    assert m.needs_end_check()
    action = m.decide(EndCheck(False))
    assert action.block_end and action.force is None


def test_finish_reason_length_and_done_rows_ignore_tokens():
    m = BudgetMachine(BudgetConfig(min_thinking_tokens=2), toks())
    drive(m, lambda i, ph: 40 + i, steps=5)
    assert m.state.finish_reason == "length" and m.phase == THINKING
    done = BudgetMachine(BudgetConfig(), toks())
    done.observe(EOS)
    done.observe(EOS)  # padding after the end
    assert len(done.state.tokens) == 1 and done.decide().force is None and done.finish().finish_reason == "stop_in_thinking"


def test_fork_is_independent():
    m = BudgetMachine(BudgetConfig(min_thinking_tokens=5), toks())
    m.decide(EndCheck(True, EOS, 0.9))  # queues the continuation
    kid = m.fork()
    kid.observe(30)
    kid.decide(EndCheck(False))
    kid.observe(41)
    assert len(kid.state.tokens) == 2 and m.state.tokens == [] and m.state.pending is not None


def test_decide_refuses_a_missing_end_check():
    m = BudgetMachine(BudgetConfig(max_thinking_tokens=5), toks())
    with pytest.raises(TTScaleError, match="needs an EndCheck"):
        m.decide()


def test_answer_without_budget_turns_an_end_of_turn_into_delimiter_and_answer_prefix():
    m = BudgetMachine(BudgetConfig(answer_without_budget=True), toks(think_end=(100, 101, 102)))
    assert m.needs_end_check()  # no budget, but the machine checks thinking steps
    got = drive(m, lambda i, ph: (EOT if i == 2 else 40 + i) if ph == THINKING else (EOS if i > 9 else 50 + i))
    assert got[:8] == [40, 41, 100, 101, 102, 10, 20, 21] and got[-1] == EOS
    assert reasons(m)[2:8] == ["end_of_turn"] * 6
    st = m.state
    assert (st.finish_reason, st.forced_stop, st.injections, st.thinking_tokens) == ("stop", False, 0, 2)
    assert st.answer_tokens == len(got) - 6  # the final-answer string counts as answer, then the model's own


def test_answer_without_budget_leaves_everything_else_alone():
    # No end of turn inside thinking: the row goes as a watching machine would (the model's delimiter is completed).
    m = BudgetMachine(BudgetConfig(answer_without_budget=True), toks(think_end=(100, 101, 102)))
    got = drive(m, lambda i, ph: [40, 100, 101, 102, 41, EOS][i])
    assert got == [40, 100, 101, 102, 41, EOS] and m.state.finish_reason == "stop" and m.state.injections == 0
    # Off (the library default) or with --no-answer-on-end-of-turn: only watching, the row stops in thinking.
    for budget in (BudgetConfig(), BudgetConfig(answer_without_budget=True, answer_on_end_of_turn=False)):
        m = BudgetMachine(budget, toks())
        assert not m.needs_end_check()
        drive(m, lambda i, ph: EOS if i == 2 else 40 + i)
        assert m.state.finish_reason == "stop_in_thinking"
