"""Property test of the whole manager on micro models: random fork / decode / truncate / release sequences.

After every operation the tree, slot and pool invariants hold; at the end every live branch's logits equal a
plain forward over its tokens, and releasing everything returns all memory. Runs on a micro Llama and on a
micro Gemma3 whose sliding window (4) is far shorter than the sequences, so windows are crossed constantly.
"""

import pytest
import torch
from conftest import make_tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from engine.kv_cache import KVCacheManager

VOCAB = 64


def micro_gemma():
    cfg = Gemma3TextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                           num_key_value_heads=1, head_dim=16, sliding_window=4, max_position_embeddings=512,
                           layer_types=["sliding_attention", "full_attention", "sliding_attention"], initializer_range=0.3)
    torch.manual_seed(1)
    return Gemma3ForCausalLM(cfg).eval()


MODELS = {"llama": lambda: make_tiny_model(vocab_size=VOCAB, hidden=32, init=0.3), "gemma3": micro_gemma}


@pytest.fixture(scope="module", params=sorted(MODELS))
def micro(request):
    return MODELS[request.param]()


pytestmark = pytest.mark.usefixtures("one_thread_module")


TOKENS = st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=3)
OP = st.one_of(
    st.tuples(st.just("fork"), st.integers(0, 99), st.integers(1, 3)),
    st.tuples(st.just("decode"), st.lists(st.tuples(st.integers(0, 99), TOKENS), min_size=1, max_size=5)),
    st.tuples(st.just("truncate"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("release"), st.integers(0, 99)),
    st.tuples(st.just("prefill"), TOKENS),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(prompt=st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=8), ops=st.lists(OP, min_size=1, max_size=40))
def test_random_manager_operations(micro, prompt, ops):
    mgr = KVCacheManager(micro, self_check=False)
    live = [mgr.prefill(prompt)]
    for op in ops:
        if op[0] == "prefill":
            live.append(mgr.prefill(op[1]))
        elif not live:
            continue
        elif op[0] == "fork":
            live += mgr.fork(live[op[1] % len(live)], op[2])
        elif op[0] == "release":
            mgr.release(live.pop(op[1] % len(live)))
        elif op[0] == "truncate":
            b = live[op[1] % len(live)]
            mgr.truncate(b, 1 + op[2] % b.length)
        else:
            picked = {}
            for i, toks in op[1]:
                picked.setdefault(i % len(live), toks)
            mgr.decode([live[i] for i in picked], list(picked.values()))
        mgr.check_invariants()
        st_ = mgr.stats()
        assert st_.tree_tokens <= sum(b.length for b in live)
        assert st_.memory_bytes == st_.tree_tokens * st_.bytes_per_token
    with torch.no_grad():
        for b in live:
            if b.logits is not None:
                want = micro(input_ids=torch.tensor([b.token_ids])).logits[0, -1]
                torch.testing.assert_close(b.logits, want, atol=1e-4, rtol=1e-4)
    mgr.release(live)
    mgr.check_invariants()
    final = mgr.stats()
    assert (final.memory_bytes, final.reserved_bytes, final.tree_tokens, final.nodes, final.branches) == (0, 0, 0, 0, 0)
