"""Process reward models (engine/search/prm.py): protocols, incremental scoring, cache bookkeeping, verifiers.

Offline there are no PRM weights (REFERENCE §7): the real SmolLM2 stands in as the causal-LM PRM for the
rlhflow and math-shepherd protocols, and a tiny random 2-label token classifier on SmolLM2's tokenizer plus
``<extra_0>`` stands in for Qwen2.5-Math-PRM. The scores are meaningless; what is tested is that the protocol's
input, its scored positions and the cached incremental path are exact.

Math-Shepherd's tag: SmolLM2 splits " ки" into " к" + "и" (the real Math-Shepherd tokenizer has one token);
the score is read at the tag's last token, the position whose next token is the label.
"""

import sys
import types

import pytest
import torch

from engine.errors import TTScaleError
from engine.search.prm import AGGREGATIONS, ModelPRM, VerifierPRM, aggregate, load_prm

QUESTION = "What is $2 + 3 \\cdot 4$?"
STEPS = ["$3 \\cdot 4 = 12$.", "$2 + 12 = 14$.", "Check: $14 - 12 = 2$.", "The answer is $\\boxed{14}$."]
TIGHT = dict(rtol=0, atol=1e-5)


def _tiny(cls, vocab_size, seed=0, **extra):
    """A 2-layer random Llama (like conftest's make_tiny_model) with larger weights, so step scores differ visibly."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=4096, initializer_range=0.2, pad_token_id=2, **extra)
    torch.manual_seed(seed)
    return cls(cfg).eval()


@pytest.fixture(scope="module")
def tiny_lm(tokenizer):
    """A fast causal-LM stand-in on SmolLM2's tokenizer, for exact bookkeeping checks (the real model is for the protocols)."""
    from transformers import LlamaForCausalLM

    return _tiny(LlamaForCausalLM, len(tokenizer)), tokenizer


@pytest.fixture(scope="module")
def qwen_standin(smol_dir):
    """A 2-layer random Llama with a 2-way token head, and SmolLM2's tokenizer with ``<extra_0>`` added."""
    from transformers import AutoTokenizer, LlamaForTokenClassification

    tokenizer = AutoTokenizer.from_pretrained(smol_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    return _tiny(LlamaForTokenClassification, len(tokenizer), num_labels=2), tokenizer


def _prm(protocol, smol, qwen_standin, **kw):
    if protocol == "qwen-prm":
        return ModelPRM(*qwen_standin, protocol, **kw)
    return ModelPRM(smol.model, smol.tokenizer, protocol, **kw)


def _naive_scores(prm, steps, question=QUESTION):
    """The slow source of truth: one plain forward of the full ids, read at the scored positions."""
    ids, positions, _ = prm._tokenize(question, tuple(prm.protocol.clean(s) for s in steps))
    with torch.no_grad():
        if prm.protocol.head == "lm":
            logits = prm.model(torch.tensor([ids])).logits[0, positions][:, list(prm.protocol.label_ids)]
            return logits.softmax(-1)[:, 0].tolist()
        return prm.model(torch.tensor([ids])).logits[0, positions].softmax(-1)[:, 1].tolist()


# ─── protocol inputs ───────────────────────────────────────────────────────────────────────────────────────────


def test_rlhflow_input_is_the_chat_template(smol):
    """Our ids are the tokenizer's own chat-template tokenisation; each scored token is followed by the "+" slot."""
    prm = ModelPRM(smol.model, smol.tokenizer, "rlhflow")
    ids, positions, _ = prm._tokenize(QUESTION, tuple(STEPS))
    conversation = []
    for k, step in enumerate(STEPS):
        conversation += [{"role": "user", "content": f"{QUESTION} {step}" if k == 0 else step}, {"role": "assistant", "content": "+"}]
    reference = smol.tokenizer.apply_chat_template(conversation, tokenize=True)
    reference = list(reference["input_ids"] if hasattr(reference, "keys") else reference)
    assert list(ids) == reference[: len(ids)]
    plus = smol.tokenizer.convert_tokens_to_ids("+")
    assert [reference[p + 1] for p in positions] == [plus] * len(STEPS)


def test_math_shepherd_input_and_tag_position(smol):
    prm = ModelPRM(smol.model, smol.tokenizer, "math-shepherd")
    assert prm.protocol.tag_tokens == 2                                      # " к" + "и" in SmolLM2
    ids, positions, _ = prm._tokenize(QUESTION, tuple(STEPS))
    full_text = QUESTION + " " + " ки\n".join(STEPS) + " ки"
    assert list(ids) == smol.tokenizer(full_text)["input_ids"]              # the tokenizer's own full-text tokenisation
    last_tag_token = smol.tokenizer.encode("и", add_special_tokens=False)[-1]
    assert [ids[p] for p in positions] == [last_tag_token] * len(STEPS)


def test_qwen_prm_input_marks_each_step(qwen_standin):
    model, tokenizer = qwen_standin
    prm = ModelPRM(model, tokenizer, "qwen-prm")
    ids, positions, _ = prm._tokenize(QUESTION, tuple(STEPS))
    sep = tokenizer.convert_tokens_to_ids("<extra_0>")
    assert [ids[p] for p in positions] == [sep] * len(STEPS) and ids.count(sep) == len(STEPS)
    messages = [{"role": "system", "content": prm.protocol.system}, {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "<extra_0>".join(STEPS) + "<extra_0>"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert list(ids) == tokenizer(text)["input_ids"][: len(ids)]


# ─── exactness of the cached path ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("protocol", ["rlhflow", "math-shepherd", "qwen-prm"])
def test_incremental_scores_equal_full_scores(protocol, smol, qwen_standin):
    """Step by step with the cache == a PRM with no cache on each prefix == a plain forward; each step runs only
    its new tokens, and the manager holds each token once."""
    inc = _prm(protocol, smol, qwen_standin)
    full = _prm(protocol, smol, qwen_standin, max_cache_tokens=0)
    previous_len = full_tokens = 0
    for k in range(1, len(STEPS) + 1):
        before = inc.forward_tokens
        scores = inc.score(QUESTION, [STEPS[:k]])[0]
        inc.check_invariants()
        ids, _, _ = inc._tokenize(QUESTION, tuple(inc.protocol.clean(s) for s in STEPS[:k]))
        assert inc.forward_tokens - before == len(ids) - previous_len       # only the new step's tokens
        assert inc.cached_tokens == len(ids)                                 # root and every step prefix share storage
        previous_len = len(ids)
        assert len(scores) == k and all(0.0 <= s <= 1.0 for s in scores)
        from_scratch = full.score(QUESTION, [STEPS[:k]])[0]                  # nothing survives a call: each is fresh
        full.check_invariants()
        assert full.cached_tokens == 0 and full.forward_tokens - full_tokens == len(ids)
        full_tokens = full.forward_tokens
        torch.testing.assert_close(torch.tensor(scores), torch.tensor(from_scratch), **TIGHT)
    torch.testing.assert_close(torch.tensor(scores), torch.tensor(_naive_scores(full, STEPS)), **TIGHT)
    assert inc.forward_tokens == previous_len


@pytest.mark.parametrize("protocol", ["rlhflow", "qwen-prm"])
def test_batched_mixed_candidates_equal_one_at_a_time(protocol, tiny_lm, qwen_standin):
    """One call with cached and fresh prefixes of different lengths, duplicates and an empty candidate (left-padded batch)."""
    model, tok = qwen_standin if protocol == "qwen-prm" else tiny_lm
    prm = ModelPRM(model, tok, protocol, batch_size=3)
    prm.score(QUESTION, [STEPS[:1], STEPS[:2]])
    candidates = [STEPS[:3], STEPS, ["A different first step."], [], STEPS[:2] + ["Another third step."], STEPS, STEPS[:1]]
    batched = prm.score(QUESTION, candidates)
    prm.check_invariants()
    single = ModelPRM(model, tok, protocol, max_cache_tokens=0)
    for got, steps in zip(batched, candidates):
        want = single.score(QUESTION, [steps])[0]
        assert len(got) == len(steps)
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want), **TIGHT)


def _distinct_prefixes(prm, candidates, question=QUESTION):
    """Tokens of the radix tree of the candidates' ids: every distinct prefix counted once."""
    return len({ids[: t + 1] for c in candidates for ids in [prm._tokenize(question, tuple(c))[0]] for t in range(len(ids))})


def test_fresh_candidates_share_the_question_prefix(tiny_lm):
    """N fresh candidates run the prompt and question once (the root entry), and every token they share once."""
    prm = ModelPRM(*tiny_lm, "rlhflow")
    candidates = [[f"Step {i}: try {i} + {i} = {2 * i}."] for i in range(1, 5)]
    prm.score(QUESTION, candidates)
    prm.check_invariants()
    lengths = [len(prm._tokenize(QUESTION, tuple(c))[0]) for c in candidates]
    _, _, shared = prm._tokenize(QUESTION, tuple(candidates[0]))
    distinct = _distinct_prefixes(prm, candidates)
    assert shared > 0 and distinct <= sum(lengths) - (len(candidates) - 1) * shared
    assert prm.forward_tokens == prm.cached_tokens == distinct
    assert prm.reused_tokens == sum(lengths) - distinct


@pytest.mark.parametrize("protocol", ["math-shepherd", "qwen-prm"])
def test_diverging_candidates_hold_common_steps_once(protocol, tiny_lm, qwen_standin):
    """N candidates share the question and two steps, then diverge: scored step by step (as a search does) or all
    in one call, each distinct token is run and stored once, and the scores equal a fresh no-cache PRM's."""
    model, tok = qwen_standin if protocol == "qwen-prm" else tiny_lm
    candidates = [STEPS[:2] + [f"Then try {i} * {i} = {i * i}.", "So it is 14."] for i in range(4)] + [STEPS[:2]]
    distinct = None
    for stepwise in (True, False):
        prm = ModelPRM(model, tok, protocol, batch_size=2)
        if stepwise:
            prm.score(QUESTION, [STEPS[:1]])
            prm.score(QUESTION, [STEPS[:2]])
            prm.score(QUESTION, [c[:3] for c in candidates[:-1]])
        got = prm.score(QUESTION, candidates)
        prm.check_invariants()
        distinct = _distinct_prefixes(prm, candidates)
        assert prm.forward_tokens == prm.cached_tokens == distinct
        assert prm.kv_stats().memory_bytes == distinct * prm.kv_stats().bytes_per_token
        single = ModelPRM(model, tok, protocol, max_cache_tokens=0)
        for steps, scores in zip(candidates, got):
            torch.testing.assert_close(torch.tensor(scores), torch.tensor(single.score(QUESTION, [steps])[0]), **TIGHT)
        entries = len(prm._cache.entries)
        assert prm.release(QUESTION) == entries and not prm._cache.entries
        prm.check_invariants()
        assert prm.cached_tokens == 0 and prm.kv_stats().memory_bytes == 0


def test_steps_are_stripped_and_cleaned_of_tags(tiny_lm):
    prm = ModelPRM(*tiny_lm, "math-shepherd", max_cache_tokens=0)
    a = prm.score(QUESTION, [[s + "\n\n" for s in STEPS[:2]]])[0]
    b = prm.score(QUESTION, [[s + " ки" for s in STEPS[:2]]])[0]                  # a step may not carry the tag itself
    c = prm.score(QUESTION, [STEPS[:2]])[0]
    torch.testing.assert_close(torch.tensor(a), torch.tensor(c), **TIGHT)
    torch.testing.assert_close(torch.tensor(b), torch.tensor(c), **TIGHT)


# ─── cache bookkeeping ─────────────────────────────────────────────────────────────────────────────────────────


def test_release_and_lru_bound(tiny_lm):
    prm = ModelPRM(*tiny_lm, "math-shepherd")
    prm.score(QUESTION, [STEPS[:1], STEPS[:2]])
    prm.score("Another question?", [STEPS[:1]])
    prm.check_invariants()
    assert prm.release(QUESTION, STEPS[:1]) == 1
    assert prm.release(QUESTION, STEPS[:1]) == 0
    prm.check_invariants()
    assert prm.release(QUESTION) == 2                                        # STEPS[:2] and the question's root
    assert all(key[0] != QUESTION for key in prm._cache.entries)
    prm.clear()
    assert prm.cached_tokens == 0

    # The bound counts distinct stored tokens: a chain of step prefixes costs its longest member only.
    full_len = len(prm._tokenize(QUESTION, tuple(STEPS))[0])
    small = ModelPRM(*tiny_lm, "math-shepherd", max_cache_tokens=full_len)
    for k in range(1, len(STEPS) + 1):
        small.score(QUESTION, [STEPS[:k]])
        small.check_invariants()                                             # never above the bound
    assert small.cached_tokens == full_len and len(small._cache.entries) == len(STEPS) + 1
    # A second question does not fit beside it: least recently used entries go until it does.
    small.score("Another question?", [STEPS[:1]])
    small.check_invariants()
    assert (("Another question?", tuple(STEPS[:1])) in small._cache.entries and small.cached_tokens <= full_len
            and (QUESTION, None) not in small._cache.entries)
    before = small.forward_tokens                                            # an evicted prefix is recomputed, exactly
    torch.testing.assert_close(torch.tensor(small.score(QUESTION, [STEPS[:2]])[0]),
                               torch.tensor(ModelPRM(*tiny_lm, "math-shepherd", max_cache_tokens=0).score(QUESTION, [STEPS[:2]])[0]), **TIGHT)
    assert small.forward_tokens > before
    small.check_invariants()


def test_a_failed_forward_leaks_no_branch(tiny_lm, monkeypatch):
    """An error inside a call releases every branch the call made; the cache stays consistent and usable."""
    prm = ModelPRM(*tiny_lm, "rlhflow")
    prm.score(QUESTION, [STEPS[:1]])

    def broken(*args, **kwargs):
        raise RuntimeError("forward failed")

    monkeypatch.setattr(prm._mgr, "extend", broken)
    with pytest.raises(RuntimeError, match="forward failed"):
        prm.score(QUESTION, [STEPS[:2], STEPS[:1] + ["Another step."]])
    prm.check_invariants()
    monkeypatch.undo()
    assert set(prm._cache.entries) == {(QUESTION, None), (QUESTION, tuple(STEPS[:1]))}
    got = prm.score(QUESTION, [STEPS[:2]])[0]
    prm.check_invariants()
    torch.testing.assert_close(torch.tensor(got), torch.tensor(ModelPRM(*tiny_lm, "rlhflow", max_cache_tokens=0).score(QUESTION, [STEPS[:2]])[0]), **TIGHT)


# ─── aggregation, refusals, loading ────────────────────────────────────────────────────────────────────────────


def test_aggregate():
    scores = [0.9, 0.5, 0.8]
    assert [aggregate(scores, how) for how in AGGREGATIONS] == pytest.approx([0.8, 0.5, 0.36, 2.2 / 3])
    with pytest.raises(TTScaleError, match="unknown"):
        aggregate(scores, "max")
    with pytest.raises(TTScaleError, match="no step scores"):
        aggregate([], "last")


def _word_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


def test_refusals(smol, smol_dir, tiny_model):
    from transformers import AutoTokenizer

    with pytest.raises(TTScaleError, match="unknown"):
        ModelPRM(smol.model, smol.tokenizer, "skywork")
    with pytest.raises(TTScaleError, match="'<extra_0>'"):
        ModelPRM(smol.model, AutoTokenizer.from_pretrained(smol_dir), "qwen-prm")     # no <extra_0> token
    with pytest.raises(TTScaleError, match="'-'"):
        ModelPRM(tiny_model, _word_tokenizer(["a", "+"]), "rlhflow")                   # "-" is not a token
    with pytest.raises(TTScaleError, match="step tag"):
        ModelPRM(tiny_model, _word_tokenizer(["a", "+", "-", "1"]), "math-shepherd")   # " ки" is unknown
    prm = ModelPRM(smol.model, smol.tokenizer, "rlhflow")
    with pytest.raises(TTScaleError, match="list of step lists"):
        prm.score(QUESTION, STEPS)
    with pytest.raises(TTScaleError, match="batch_size"):
        ModelPRM(smol.model, smol.tokenizer, "rlhflow", batch_size=0)


def test_load_prm_local_dirs(tmp_path, qwen_standin):
    model, tokenizer = qwen_standin
    model.save_pretrained(tmp_path / "cls")
    tokenizer.save_pretrained(tmp_path / "cls")
    prm = load_prm(str(tmp_path / "cls"), "qwen-prm")
    direct = ModelPRM(model, tokenizer, "qwen-prm")
    torch.testing.assert_close(torch.tensor(prm.score(QUESTION, [STEPS])[0]), torch.tensor(direct.score(QUESTION, [STEPS])[0]), **TIGHT)

    model.config.auto_map = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}  # how Qwen2.5-Math-PRM ships
    try:
        model.save_pretrained(tmp_path / "remote")
    finally:
        del model.config.auto_map
    tokenizer.save_pretrained(tmp_path / "remote")
    with pytest.raises(TTScaleError, match="trust_remote_code=True"):
        load_prm(str(tmp_path / "remote"), "qwen-prm")
    with pytest.raises(TTScaleError, match="unknown"):
        load_prm(str(tmp_path / "cls"), "prm800k")


def test_load_prm_embedded_causal_lm(smol):
    prm = load_prm("smollm2-135m", "math-shepherd")
    reference = ModelPRM(smol.model, smol.tokenizer, "math-shepherd")
    torch.testing.assert_close(torch.tensor(prm.score(QUESTION, [STEPS[:1]])[0]),
                               torch.tensor(reference.score(QUESTION, [STEPS[:1]])[0]), **TIGHT)


# ─── programmatic verifiers ────────────────────────────────────────────────────────────────────────────────────


def test_verifier_prm_from_spec():
    prm = load_prm("engine.search.verifiers:arithmetic", "verifier")
    wrong = [STEPS[0], "## Step 2: Add.\n$2 + 12 = 15$.", STEPS[3]]
    assert prm.score(QUESTION, [STEPS, wrong, []]) == [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0], []]
    assert prm.forward_tokens == 0 and prm.release(QUESTION) == 0


def test_verifier_prm_refusals(monkeypatch):
    module = types.ModuleType("ttscale_test_verifiers")
    module.not_callable = 3
    module.wrong_length = lambda question, steps: [1.0]
    module.bools = lambda question, steps: [len(s) > 3 for s in steps]
    monkeypatch.setitem(sys.modules, "ttscale_test_verifiers", module)
    for spec, message in [("no_colon", "module:function"), ("a:b:c", "module:function"),
                          ("ttscale_missing_module_xyz:f", "cannot import"), ("ttscale_test_verifiers:nope", "no attribute"),
                          ("ttscale_test_verifiers:not_callable", "not a function")]:
        with pytest.raises(TTScaleError, match=message):
            VerifierPRM.from_spec(spec)
    with pytest.raises(TTScaleError, match="one score"):
        VerifierPRM.from_spec("ttscale_test_verifiers:wrong_length").score(QUESTION, [["a", "b"]])
    assert VerifierPRM.from_spec("ttscale_test_verifiers:bools").score(QUESTION, [["ab", "abcd"]]) == [[0.0, 1.0]]
