"""Scaled dot-product attention written from scratch, plus the two masks it is used with.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

Mask convention everywhere in this repository: a boolean tensor, True = "this query may
attend to this key", broadcastable to (..., T_q, T_k). It is the same convention as the
boolean ``attn_mask`` of ``torch.nn.functional.scaled_dot_product_attention`` (and the
opposite of ``torch.nn.MultiheadAttention``'s ``key_padding_mask``, where True = ignore).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = False,
    *,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Return ``(output, weights)``.

    q: (..., T_q, d), k: (..., T_k, d), v: (..., T_k, d_v)
    output: (..., T_q, d_v); weights: (..., T_q, T_k), the softmax before dropout, so each
    row with at least one allowed key sums to 1.

    A query whose keys are ALL masked gets weights 0 and output 0 (a plain softmax over a row
    of -inf would give NaN and poison every later layer).
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            f"q, k, v need at least 2 dims (..., T, d); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.size(-1) != k.size(-1):
        raise ValueError(
            f"q and k must have the same last dim (d_k); got {q.size(-1)} and {k.size(-1)}"
        )
    if k.size(-2) != v.size(-2):
        raise ValueError(
            f"k and v must have the same number of positions T_k; got {k.size(-2)} and {v.size(-2)}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(q.size(-1))

    # (..., T_q, d) @ (..., d, T_k) -> (..., T_q, T_k): one similarity score per query/key pair.
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale

    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(
                f"mask must be a bool tensor (True = may attend); got {mask.dtype}. "
                "Convert it with `mask.bool()` or build it with causal_mask()/padding_mask()."
            )
        # -inf becomes exactly 0 after softmax, so masked keys get exactly zero weight.
        scores = scores.masked_fill(~mask, float("-inf"))
        # Rows with no allowed key would be all -inf (softmax -> NaN); give them finite scores
        # here and zero them after the softmax.
        has_key = mask.any(dim=-1, keepdim=True)
        scores = scores.masked_fill(~has_key, 0.0)

    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # fully masked rows -> all zeros

    attn = F.dropout(weights, p=dropout_p, training=True) if training and dropout_p > 0 else weights
    # (..., T_q, T_k) @ (..., T_k, d_v) -> (..., T_q, d_v): weighted average of the values.
    output = torch.matmul(attn, v)
    return output, weights


def causal_mask(T_q: int, T_k: int | None = None, device=None) -> Tensor:
    """Look-ahead mask (T_q, T_k), True = may attend.

    The queries are the LAST T_q of the T_k positions (as with a KV cache, where earlier
    keys are already stored), so query i may attend keys j <= i + (T_k - T_q). With
    T_q == T_k this is the usual lower-triangular matrix.
    """
    if T_k is None:
        T_k = T_q
    if T_q < 0 or T_k < T_q:
        raise ValueError(
            f"causal_mask needs 0 <= T_q <= T_k (queries are the last T_q of T_k positions); "
            f"got T_q={T_q}, T_k={T_k}"
        )
    ones = torch.ones(T_q, T_k, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=T_k - T_q)


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B, 1, 1, max_len) bool mask, True on the first ``lengths[b]`` (real) tokens.

    The two singleton dims broadcast over heads and queries: (B, h, T_q, T_k).
    """
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(
            f"lengths must be 1-D (one length per sequence); got shape {tuple(lengths.shape)}"
        )
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > max_len):
        raise ValueError(f"every length must be in [0, max_len={max_len}]; got {lengths.tolist()}")
    positions = torch.arange(max_len, device=lengths.device)
    # (1, max_len) < (B, 1) -> (B, max_len) -> (B, 1, 1, max_len)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]
