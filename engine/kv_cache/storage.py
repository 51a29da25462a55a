"""The only module that owns KV tensors: one slot pool per layer for keys and one for values.

    layer l:  keys[l]   (capacity, kv_heads, head_dim)     row s = keys of the token stored in slot s
              values[l] (capacity, kv_heads, head_dim)

Slot ids come from :class:`engine.kv_cache.slots.SlotAllocator`; this module only follows its ``capacity``
(``resize``), writes new rows (``write``) and gathers rows into the ``(B, kv_heads, L, head_dim)`` layout that
attention expects (``gather``). Shapes and dtype are taken from the first keys a layer writes, so layers with
different head counts or sizes work. A gather is a temporary of one layer (freed when attention is done); what is
*held* is only the pools, so a prefix shared by N branches costs one copy.
"""

from __future__ import annotations

import torch


class KVStorage:
    """Per-layer key/value slot pools that grow and shrink to a capacity chosen by the allocator.

    Refuses nothing itself: capacity limits are the allocator's job, shape mismatches are bugs (``AssertionError``).
    """

    def __init__(self, num_layers: int):
        self.num_layers = num_layers
        self.capacity = 0
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.peak_bytes = 0
        self._row_bytes = [0] * num_layers  # bytes of one slot's keys + values per layer, known after its first write

    # ------------------------------------------------------------------ sizes

    @property
    def bytes_per_token(self) -> int:
        """Bytes one slot occupies across all layers (keys + values); 0 before the first write."""
        return sum(self._row_bytes)

    @property
    def reserved_bytes(self) -> int:
        """Bytes of pool tensors allocated now (capacity x bytes per token)."""
        return sum(t.numel() * t.element_size() for pool in (self.keys, self.values) for t in pool if t is not None)

    # ------------------------------------------------------------------ capacity

    def resize(self, capacity: int) -> None:
        """Follow the allocator's capacity: grow (copying live rows) or shrink (slots past it are free); 0 drops all."""
        if capacity == self.capacity:
            return
        for pool in (self.keys, self.values):
            for layer, t in enumerate(pool):
                if t is None:
                    continue
                if capacity == 0:
                    pool[layer] = None
                    continue
                new = t.new_empty((capacity, *t.shape[1:]))
                keep = min(capacity, t.shape[0])
                new[:keep] = t[:keep]
                pool[layer] = new
        self.capacity = capacity
        self.peak_bytes = max(self.peak_bytes, self.reserved_bytes)

    # ------------------------------------------------------------------ data

    def write(self, layer: int, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store rows: ``keys[i]`` / ``values[i]`` ``(n, kv_heads, head_dim)`` go to slot ``slots[i]`` of ``layer``."""
        if self.keys[layer] is None:
            shape = (self.capacity, *keys.shape[1:])
            self.keys[layer] = keys.new_empty(shape)
            self.values[layer] = values.new_empty((self.capacity, *values.shape[1:]))
            self._row_bytes[layer] = (keys[0].numel() + values[0].numel()) * keys.element_size()
            self.peak_bytes = max(self.peak_bytes, self.reserved_bytes)
        assert self.keys[layer].shape[1:] == keys.shape[1:], f"layer {layer} wrote keys {tuple(keys.shape)} into a pool of {tuple(self.keys[layer].shape)}"
        self.keys[layer].index_copy_(0, slots, keys.to(self.keys[layer].dtype))
        self.values[layer].index_copy_(0, slots, values.to(self.values[layer].dtype))

    def gather(self, layer: int, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows for ``index`` ``(B, L)`` of slot ids, as keys and values ``(B, kv_heads, L, head_dim)``."""
        b, length = index.shape
        flat = index.reshape(-1)
        k = self.keys[layer].index_select(0, flat)  # (B*L, kv, hd)
        v = self.values[layer].index_select(0, flat)
        k = k.view(b, length, *k.shape[1:]).transpose(1, 2)  # (B, kv, L, hd)
        v = v.view(b, length, *v.shape[1:]).transpose(1, 2)
        return k, v
