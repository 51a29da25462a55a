"""engine.kv_cache.compat: the cache reaches a model's forward by the name that forward takes, on any transformers.

The installed transformers decides the stock name (``cache`` from 5.24, ``past_key_values`` before); wrappers
written in each style prove that both branches of the helper run on whichever version is installed.
"""

import pytest
import torch
from conftest import make_tiny_model
from transformers import DynamicCache, LlamaForCausalLM

from engine.errors import TTScaleError
from engine.kv_cache import KVCacheManager
from engine.kv_cache.compat import CACHE_ARGUMENTS, cache_argument, cache_kwargs, require_cache_argument, returned_cache
from engine.search.prm import ModelPRM

STOCK = cache_argument(LlamaForCausalLM)


class OldStyle(LlamaForCausalLM):
    """A forward written before the rename: takes ``past_key_values`` and hands it on under the stock name."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, **kw):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               **{STOCK: past_key_values}, **kw)


class NewStyle(LlamaForCausalLM):
    """A forward written after the rename: takes ``cache``."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, **kw):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               **{STOCK: cache}, **kw)


class NoCacheArg(LlamaForCausalLM):
    """A forward that takes its cache only through ``**kw``: nothing in its signature says how to hand it one."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kw):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kw)


def _as(cls, seed=0):
    base = make_tiny_model(vocab_size=512, init=0.2, seed=seed)
    model = cls(base.config).eval()
    model.load_state_dict(base.state_dict())
    return model


def test_stock_name_is_the_one_in_the_installed_signature():
    import inspect

    params = inspect.signature(LlamaForCausalLM.forward).parameters
    assert STOCK in CACHE_ARGUMENTS and STOCK in params
    assert [n for n in CACHE_ARGUMENTS if n in params][0] == STOCK  # newest name wins when a forward lists both
    model = make_tiny_model(vocab_size=512)
    assert cache_argument(model) == cache_argument(model.base_model) == STOCK


def test_each_style_gets_its_own_name_and_neither_is_refused():
    assert cache_argument(_as(OldStyle)) == "past_key_values"
    assert cache_argument(_as(NewStyle)) == "cache"
    assert cache_argument(_as(NoCacheArg)) is None
    assert cache_argument(object()) is None
    cache = DynamicCache()
    assert cache_kwargs(_as(OldStyle), cache) == {"past_key_values": cache, "use_cache": True}
    assert cache_kwargs(_as(NewStyle), cache) == {"cache": cache, "use_cache": True}
    with pytest.raises(TTScaleError, match=r"^model NoCacheArg.forward takes no cache argument \(neither cache nor past_key_values\)"):
        require_cache_argument(_as(NoCacheArg))


def test_manager_serves_both_styles_identically_and_refuses_neither():
    """Fork-and-decode through each wrapper gives the stock model's logits: the cache really reached the layers."""
    prompt, steps = [5, 17, 42, 99, 3], [[7], [11], [13]]
    runs = []
    for cls in (LlamaForCausalLM, OldStyle, NewStyle):
        mgr = KVCacheManager(_as(cls))  # its self-check compares against a plain forward
        root = mgr.prefill(prompt)
        a, b = mgr.fork(root, 2)
        mgr.release(root)
        got = [mgr.decode([a, b], [s, [s[0] + 1]]) for s in steps]
        mgr.check_invariants()
        runs.append(torch.stack(got))
    assert torch.allclose(runs[0], runs[1], atol=1e-5) and torch.allclose(runs[0], runs[2], atol=1e-5)
    with pytest.raises(TTScaleError, match=r"NoCacheArg.forward has no cache or past_key_values argument\(s\)"):
        KVCacheManager(_as(NoCacheArg))


def test_returned_cache_reads_either_output_field():
    cache = DynamicCache()
    assert returned_cache(type("New", (), {"cache": cache})()) is cache
    assert returned_cache(type("Old", (), {"past_key_values": cache})()) is cache
    assert returned_cache(type("Neither", (), {})()) is None
    model = make_tiny_model(vocab_size=512)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, 2, 3]]), **cache_kwargs(model, cache))
    assert returned_cache(out) is cache and cache.get_seq_length() == 3  # the model wrote into the cache we gave


def test_prm_refuses_a_body_without_a_cache_argument(tokenizer):
    class Body(torch.nn.Module):
        def forward(self, input_ids=None, **kw):
            raise AssertionError("never run: refused at construction")

    model = make_tiny_model()
    model.model = Body()  # base_model is what lm-head protocols run
    with pytest.raises(TTScaleError, match=r"^model Body.forward takes no cache argument"):
        ModelPRM(model, tokenizer, "math-shepherd")
