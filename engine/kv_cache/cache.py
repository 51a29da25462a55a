"""The transformers ``Cache`` the model sees during one forward: writes new keys/values to the slot pools and
hands each attention layer the rows it may read.

A stock model calls ``cache.update(key_states, value_states, layer_idx)`` (the cache it was handed as ``cache=``,
or ``past_key_values=`` before transformers 5.24; see :mod:`engine.kv_cache.compat`) in every attention layer and
attends over whatever comes back, under the attention mask it was given. :class:`TreeCache` is a
``Cache(layers=[...])`` whose layers (:class:`TreeCacheLayer`) do exactly two things in ``update``:

    key_states (B, kv, T, hd) --write real positions--> pool slots plan.write_slots
    pool rows plan.gather[kind] (B, L) --gather--> keys (B, kv, L, hd) returned to attention

The mask from :mod:`engine.kv_cache.plan` matches that (B, L) layout, so the model never learns that rows share
storage. One ``TreeCache`` is built per forward (it is a few small objects) and is useless afterwards: the
persistent state lives in :class:`engine.kv_cache.storage.KVStorage` and the tree.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from engine.kv_cache.plan import ForwardPlan
from engine.kv_cache.storage import KVStorage


class TreeCacheLayer(CacheLayerMixin):
    """One layer's view of the pool for one forward; ``kind`` names its attention kind in the plan."""

    is_compileable = False
    is_croppable = False

    def __init__(self, storage: KVStorage, layer_idx: int, kind: str, plan: ForwardPlan):
        super().__init__()
        self.storage, self.layer_idx, self.kind, self.plan = storage, layer_idx, kind, plan
        self.is_sliding = kind == "sliding_attention"

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to allocate here: the storage allocates a layer's pools on its first write."""
        self.is_initialized = True  # the pools are allocated by the storage on first write

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this forward's real new keys/values, return the rows each query row may attend to.

        ``key_states``/``value_states``: (B, kv, T, hd) -> returns (B, kv, L, hd) each.
        """
        b, h, t, d = key_states.shape
        rows = self.plan.write_rows
        k_new = key_states.transpose(1, 2).reshape(b * t, h, d).index_select(0, rows)  # (N, kv, hd)
        v_new = value_states.transpose(1, 2).reshape(b * t, h, value_states.shape[-1]).index_select(0, rows)
        self.storage.write(self.layer_idx, self.plan.write_slots, k_new, v_new)
        return self.storage.gather(self.layer_idx, self.plan.gather[self.kind])

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """(key length this layer returns, offset 0); only read if a model builds its own mask."""
        return self.plan.gather[self.kind].shape[1], 0

    def get_seq_length(self) -> int:
        """Longest stored prefix among this forward's rows."""
        # Rows have different lengths; the longest stored prefix is the only single number that makes sense.
        return self.plan.max_past

    def get_max_length(self) -> int:
        """No fixed maximum (-1): the pool grows up to the manager's ``max_tokens``."""
        return -1


class TreeCache(Cache):
    """A ``Cache`` over the shared slot pools for one planned forward; ``layer_kinds[i]`` is layer i's kind."""

    def __init__(self, storage: KVStorage, layer_kinds: list[str], plan: ForwardPlan):
        super().__init__(layers=[TreeCacheLayer(storage, i, kind, plan) for i, kind in enumerate(layer_kinds)])
