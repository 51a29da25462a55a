"""engine/kv_cache: a prefix-sharing KV cache for search over a stock transformers causal LM.

Prefill a prompt once, fork branches that share it without copying, decode branches of different depths in one
forward (``extend`` also returns the model's outputs at chosen positions, for scoring: the PRM's prefix cache runs
on it), release branches to get their memory back. Modules, one concept each:

- ``slots``   — which pool rows are free (pure Python)
- ``tree``    — segments, parents, handles, reference counts, ``check_invariants`` (pure Python)
- ``storage`` — the only owner of KV tensors: per-layer slot pools
- ``plan``    — one forward's rows, gather indices, positions and 4-D masks
- ``cache``   — the transformers ``Cache`` the model writes to and reads from
- ``support`` — which architectures are served, and clear refusals for the rest
- ``compat``  — how a cache reaches a model's forward (``cache=`` from transformers 5.24, ``past_key_values=`` before)
- ``manager`` — the public API: ``KVCacheManager``, ``Branch``, ``KVStats``
"""

from engine.kv_cache.manager import Branch, KVCacheManager, KVStats

__all__ = ["Branch", "KVCacheManager", "KVStats"]
