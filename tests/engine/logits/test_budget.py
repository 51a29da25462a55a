"""Budget forcing on a tiny random model: exact token-level checks against plain generate and the budget rules.

A random tiny model almost never chooses an end token, so most tests add a logit bias on the end tokens with
transformers' own ``sequence_bias`` processor (a built-in that runs before ours): the model then tries to end
thinking every few tokens, which is what the budget rules act on.
"""

import pytest
import torch

from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.formats import ThinkingFormat, get_format
from engine.logits.budget import BudgetConfig, BudgetForcingProcessor
from engine.logits.sampling import SamplingConfig

PROMPTS = ["hello there", "what is two plus two, and why?", "count to five"]


def bias(tokenizer, fmt, value):
    ends = {tokenizer.encode(fmt.think_end, add_special_tokens=False)[0], tokenizer.eos_token_id}
    return {"sequence_bias": {(t,): value for t in ends}}


@pytest.fixture(scope="module")
def engine(tiny_model, tokenizer):
    return ThinkingEngine(tiny_model, tokenizer, format="s1")


def plain_generate(engine, prompt, max_new_tokens, **kw):
    text = engine.render(prompt)
    enc = engine.tokenizer([text], return_tensors="pt", add_special_tokens=engine.style.add_special_tokens)
    tokens = engine.budget_tokens(BudgetConfig())
    out = engine.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=list(tokens.end_ids),
                                pad_token_id=engine.tokenizer.pad_token_id, **kw)
    return out[0, enc["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("b", [0.0, 0.6])
def test_no_budget_is_plain_generate(engine, b):
    kw = bias(engine.tokenizer, engine.format, b) if b else {}
    for prompt in PROMPTS:
        want = plain_generate(engine, prompt, 40, **kw)
        got = engine.generate([prompt], max_new_tokens=40, **kw)[0]
        assert got.token_ids == want
        assert got.waits_injected == 0 and not got.forced_stop


def test_batch_row_equals_alone(engine):
    budget = BudgetConfig(min_thinking_tokens=12, max_thinking_tokens=30, max_answer_tokens=8)
    kw = bias(engine.tokenizer, engine.format, 0.7)
    together = engine.generate(PROMPTS, budget, batch_size=3, **kw)
    for prompt, row in zip(PROMPTS, together):
        alone = engine.generate([prompt], budget, **kw)[0]
        assert row.token_ids == alone.token_ids
        assert (row.thinking_tokens, row.waits_injected) == (alone.thinking_tokens, alone.waits_injected)


def split_generation(engine, res):
    """Independent accounting from the raw ids: tokens before the delimiter, the delimiter, the rest."""
    delim = list(engine.tokenizer.encode(engine.format.think_end, add_special_tokens=False))
    ids = res.token_ids
    for i in range(len(ids) - len(delim) + 1):
        if ids[i:i + len(delim)] == delim:
            return ids[:i], ids[i + len(delim):]
    return ids, []


@pytest.mark.parametrize("greedy", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_budget_bounds_hold(engine, greedy, seed):
    budget = BudgetConfig(min_thinking_tokens=15, max_thinking_tokens=35, max_answer_tokens=6)
    sampling = SamplingConfig() if greedy else SamplingConfig(temperature=1.0, top_p=0.95, top_k=200, seed=seed)
    kw = bias(engine.tokenizer, engine.format, 0.6 + 0.1 * seed if greedy else 7.5 + seed)
    results = engine.generate(PROMPTS, budget, sampling, batch_size=3, trace=True, **kw)
    for r in results:
        assert budget.min_thinking_tokens <= r.thinking_tokens <= budget.max_thinking_tokens
        assert r.answer_tokens <= budget.max_answer_tokens
        thinking_ids, after = split_generation(engine, r)
        # The raw ids agree with the counts: the thinking tokens (injected ones included) and then the delimiter.
        assert len(thinking_ids) - (1 if r.forced_stop else 0) == r.thinking_tokens  # cap_prefix "\n" is forced text
        tokens = r.trace[1:]
        assert sum(t["kind"] == "thinking" for t in tokens) == r.thinking_tokens
        assert sum("suppressed_end" in t for t in tokens) == r.waits_injected
        assert all(t["source"] == "forced" for t in tokens if t["reason"] in ("min_budget", "max_budget"))
        if r.forced_stop:
            tail = engine.tokenizer.decode(r.token_ids[len(thinking_ids) - 1:])
            assert tail.startswith("\n<|im_start|>answer\nFinal Answer:")


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("seed", [0, 5])
def test_num_ignore_injects_exactly_k(engine, k, seed):
    budget = BudgetConfig(num_ignore=k, max_thinking_tokens=80, max_answer_tokens=4)
    sampling = SamplingConfig(temperature=1.0, seed=seed)
    results = engine.generate(PROMPTS, budget, sampling, batch_size=3, **bias(engine.tokenizer, engine.format, 9.0))
    natural = 0
    for r in results:
        if not r.forced_stop:  # it ended by itself, so it tried to end k + 1 times: exactly k were replaced
            assert r.waits_injected == k
            natural += 1
        else:
            assert r.waits_injected <= k
    assert natural >= 2  # the bias makes the model try to end often; the check above must have been exercised


def test_continuations_rotate(engine):
    budget = BudgetConfig(num_ignore=4, ignore_strs=("Wait", "Hmm"), max_thinking_tokens=200)
    r = engine.generate(["hi"], budget, SamplingConfig(temperature=1.0, seed=3), trace=True,
                        **bias(engine.tokenizer, engine.format, 10.0))[0]
    injected = "".join(t["text"] for t in r.trace[1:] if t["reason"] == "ignore")  # "Hmm" is two tokens here
    assert injected == "WaitHmmWaitHmm"
    assert r.waits_injected == 4 and sum("suppressed_end" in t for t in r.trace[1:]) == 4


def test_multi_token_delimiter(tiny_model, tokenizer):
    fmt = get_format("think-tags")
    delim = tokenizer.encode(fmt.think_end, add_special_tokens=False)
    assert len(delim) == 3  # </ think >: three tokens on this tokenizer
    engine = ThinkingEngine(tiny_model, tokenizer, format=fmt)
    budget = BudgetConfig(min_thinking_tokens=10, max_thinking_tokens=40, max_answer_tokens=5)
    # Bias the delimiter's first token only: every attempt is the model starting "</think>".
    kw = {"sequence_bias": {(delim[0],): 2.0}}  # strong: the model tries to end at every step
    results = engine.generate(PROMPTS, budget, batch_size=3, trace=True, **kw)
    for r in results:
        ids = r.token_ids
        starts = [i for i in range(len(ids) - 2) if ids[i:i + 3] == delim]
        assert len(starts) == 1, "the delimiter appears exactly once, whole"
        assert 10 <= r.thinking_tokens <= 40
        if not r.forced_stop:
            first = r.trace[1 + starts[0]]
            assert (first["source"], first["reason"]) == ("sampled", "model_end")
            assert [t["reason"] for t in r.trace[2 + starts[0]:4 + starts[0]]] == ["delimiter", "delimiter"]
        assert "</think>" not in r.thinking
    assert any(r.waits_injected for r in results)


def test_custom_delimiter_capped(tiny_model, tokenizer):
    fmt = ThinkingFormat("custom", think_start="[THINK]\n", think_end="[DONE THINKING]")
    engine = ThinkingEngine(tiny_model, tokenizer, format=fmt)
    r = engine.generate(["hi"], BudgetConfig(max_thinking_tokens=7, max_answer_tokens=3))[0]
    assert r.thinking_tokens == 7 and r.forced_stop
    assert "\n[DONE THINKING]\nFinal Answer:" in tokenizer.decode(r.token_ids)
    assert r.answer.startswith("Final Answer:")


def test_sampling_is_reproducible(engine):
    budget = BudgetConfig(min_thinking_tokens=10, max_thinking_tokens=30)
    sampling = SamplingConfig(temperature=0.9, top_p=0.9, seed=11)
    kw = bias(engine.tokenizer, engine.format, 8.0)
    a = engine.generate(PROMPTS, budget, sampling, **kw)
    b = engine.generate(PROMPTS, budget, sampling, **kw)
    assert [r.token_ids for r in a] == [r.token_ids for r in b]


def test_processor_never_edits_scores_in_place(engine):
    tokens = engine.budget_tokens(BudgetConfig(min_thinking_tokens=5))
    proc = BudgetForcingProcessor(tokens, BudgetConfig(min_thinking_tokens=5), greedy=True)
    ids = torch.tensor([[5, 6, 7]])
    scores = torch.zeros(1, len(engine.tokenizer))
    scores[0, tokens.end_ids[0]] = 5.0
    before = scores.clone()
    out = proc(ids, scores)
    assert torch.equal(scores, before)
    assert out[0].argmax().item() == tokens.continuations[0][0]  # the attempt to end became "Wait"


def test_trace_probabilities(engine):
    r = engine.generate(["hi"], BudgetConfig(min_thinking_tokens=8, max_thinking_tokens=16), trace=True,
                        **bias(engine.tokenizer, engine.format, 0.7))[0]
    head, toks = r.trace[0], r.trace[1:]
    assert head["type"] == "generation" and head["thinking_tokens"] == r.thinking_tokens
    assert [t["id"] for t in toks] == r.token_ids
    for t in toks:
        assert 0.0 <= t["prob"] <= 1.0 and len(t["top"]) == 5
        if t["source"] == "sampled":  # greedy: the sampled token is the most probable one
            assert t["id"] == t["top"][0][0]
    for t in toks:
        if "suppressed_end" in t:
            assert t["suppressed_end"]["p_end"] > 0
            assert t["top"][0][0] == t["suppressed_end"]["id"]  # greedy wanted to end here


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_thinking_tokens=10, max_thinking_tokens=5), "larger than"),
    (dict(min_thinking_tokens=-1), ">= 0"),
    (dict(num_ignore=-2), ">= 0"),
    (dict(max_thinking_tokens=0), ">= 1"),
    (dict(max_answer_tokens=-5), ">= 1"),
    (dict(ignore_strs=("",)), "non-empty"),
])
def test_bad_budgets(kwargs, message):
    with pytest.raises(TTScaleError, match=message):
        BudgetConfig(**kwargs)


def test_bad_sampling():
    for kw in (dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-1)):
        with pytest.raises(TTScaleError):
            SamplingConfig(**kw)


def test_empty_prompts_refused(engine):
    with pytest.raises(TTScaleError, match="empty"):
        engine.generate(["fine", "  "])
    with pytest.raises(TTScaleError, match="no prompts"):
        engine.generate([])


def test_delimiter_the_tokenizer_cannot_encode(tiny_model):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<eos>": 1, "hello": 2, "think": 3, "answer": 4}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", eos_token="<eos>", pad_token="<eos>")
    engine = ThinkingEngine(tiny_model, tok, format=ThinkingFormat("custom", "think", "<stop-thinking>"), template="plain")
    with pytest.raises(TTScaleError, match="cannot be encoded"):
        engine.generate(["hello"], BudgetConfig(max_thinking_tokens=4))


def test_model_without_chat_template_uses_plain_prompt(tiny_model, tokenizer):
    import copy

    plain_tok = copy.deepcopy(tokenizer)
    plain_tok.chat_template = None
    engine = ThinkingEngine(tiny_model, plain_tok, format="think-tags")
    assert engine.style.kind == "plain" and "plain prompt" in engine.describe()
    assert engine.render("What is 2+2?") == "What is 2+2?\n<think>\n"
    r = engine.generate(["What is 2+2?"], BudgetConfig(min_thinking_tokens=5, max_thinking_tokens=9, max_answer_tokens=3))[0]
    assert 5 <= r.thinking_tokens <= 9 and r.finish_reason in ("stop", "max_answer")
    with pytest.raises(TTScaleError, match="no chat template"):
        ThinkingEngine(tiny_model, plain_tok, template="chat")
