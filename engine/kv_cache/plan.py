"""One forward's index arithmetic: rows of new tokens, which slots each row reads, and its 4-D attention masks.

Each row is one branch: ``n`` tokens already stored (their slots, in sequence order) and ``m >= 1`` new tokens
with freshly allocated slots. New tokens are right-padded to ``T = max m``. For every attention kind (full, or a
sliding window ``W``), each row reads the keys from depth ``s = max(0, n - W + 1)`` (0 for full attention) to
``n + m``, right-padded to ``L = max(n + m - s)`` with a masked dummy slot:

    row 0: n=4 m=1   keys  [p0 p1 p2 p3 x0 -- --]    queries [x0 pad pad]
    row 1: n=2 m=3   keys  [q0 q1 y0 y1 y2 -- --]    queries [y0 y1  y2 ]
    row 2: n=6 m=1   keys  [r0 r1 r2 r3 r4 r5 z0]    queries [z0 pad pad]

A query at depth ``d`` sees key depth ``k`` iff ``k <= d`` (causal), ``k > d - W`` (window) and ``k`` is a real
key. Padded queries copy the last real query of their row (depth and mask), so no mask row is empty (no NaN);
their outputs are discarded and their keys/values are never written. Position ids are the depths, so RoPE sees
each branch at its true offset.

Masks are additive floats (0 or the dtype's minimum): the form both the eager and the SDPA attention of
transformers accept unchanged (REFERENCE §5: 4-D masks pass through ``create_causal_mask`` as they are).

Why one row per branch rather than all new tokens packed into one sequence: packed, every query scores every
stored key of every branch (cost ~ B x all tokens in the tree, quadratic in divergent branches); in rows it scores
only its own ancestors (B x longest branch). The price is that each row gathers its prefix from the pool, one layer
at a time; that copy is a temporary freed after the layer's attention, so what is *held* stays one copy of the
prefix, and it is the same traffic as DynamicCache's own ``torch.cat`` of its whole cache at every step.
Sliding-window layers gather only the last ``W - 1`` stored keys of a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RowSpec:
    """One branch in a forward: the slots of its stored tokens and its new tokens with their new slots."""

    past_slots: list[int]
    new_tokens: list[int]
    new_slots: list[int]


@dataclass
class ForwardPlan:
    """Tensors for one forward over B rows; ``kinds`` maps a layer kind name to its window (None = full)."""

    input_ids: torch.Tensor      # (B, T) new tokens, right-padded
    position_ids: torch.Tensor   # (B, T) depth of each query
    write_rows: torch.Tensor     # (N,) flat index b*T+j of each real new token
    write_slots: torch.Tensor    # (N,) slot that token's keys/values go to
    gather: dict[str, torch.Tensor]  # kind -> (B, L_kind) slot ids each row reads
    masks: dict[str, torch.Tensor]   # kind -> (B, 1, T, L_kind) additive mask
    last_index: torch.Tensor     # (B, 1) index of each row's last real query
    real_tokens: int
    padded_tokens: int
    max_past: int                # longest stored prefix among the rows


def build_plan(rows: list[RowSpec], kinds: dict[str, int | None], dtype: torch.dtype, device: torch.device) -> ForwardPlan:
    """Build the input ids, position ids, write/gather indices and masks for ``rows``.

    ``kinds`` maps each attention kind present in the model (``"full_attention"``, ``"sliding_attention"``) to its
    window size or None. Every row must have at least one new token and one new slot per token.
    """
    b = len(rows)
    t = max(len(r.new_tokens) for r in rows)
    past = torch.tensor([len(r.past_slots) for r in rows], dtype=torch.long)  # (B,)
    new = torch.tensor([len(r.new_tokens) for r in rows], dtype=torch.long)  # (B,)

    ids, write_rows, write_slots = [], [], []
    for i, r in enumerate(rows):
        assert r.new_tokens and len(r.new_tokens) == len(r.new_slots), f"row {i}: {len(r.new_tokens)} tokens, {len(r.new_slots)} slots"
        ids.append(r.new_tokens + [r.new_tokens[-1]] * (t - len(r.new_tokens)))
        write_rows.extend(range(i * t, i * t + len(r.new_tokens)))
        write_slots.extend(r.new_slots)
    j = torch.arange(t)
    q_depth = past[:, None] + torch.minimum(j[None, :], new[:, None] - 1)  # (B, T); padded queries repeat the last

    gather, masks = {}, {}
    neg = torch.finfo(dtype).min
    for kind, window in kinds.items():
        starts = [0 if window is None else max(0, len(r.past_slots) - window + 1) for r in rows]
        idx_rows = [r.past_slots[s:] + r.new_slots for r, s in zip(rows, starts)]
        width = max(len(x) for x in idx_rows)
        idx = torch.tensor([x + [x[0]] * (width - len(x)) for x in idx_rows], dtype=torch.long)  # (B, L)
        k_depth = torch.tensor(starts, dtype=torch.long)[:, None] + torch.arange(width)[None, :]  # (B, L)
        allowed = k_depth[:, None, :] <= q_depth[:, :, None]  # (B, T, L); also excludes padded keys
        if window is not None:
            allowed &= k_depth[:, None, :] > q_depth[:, :, None] - window
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, neg)
        gather[kind] = idx.to(device)
        masks[kind] = mask[:, None].to(device)  # (B, 1, T, L)

    real = int(new.sum())
    return ForwardPlan(
        input_ids=torch.tensor(ids, dtype=torch.long, device=device),
        position_ids=q_depth.to(device),
        write_rows=torch.tensor(write_rows, dtype=torch.long, device=device),
        write_slots=torch.tensor(write_slots, dtype=torch.long, device=device),
        gather=gather,
        masks=masks,
        last_index=(new - 1)[:, None].to(device),
        real_tokens=real,
        padded_tokens=b * t - real,
        max_past=int(past.max()),
    )
