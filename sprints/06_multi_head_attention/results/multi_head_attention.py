"""Multi-head attention as an ``nn.Module``, built on the from-scratch attention function.

    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O

The h per-head projections are done as ONE d_model -> d_model Linear each for q, k and v;
``split_heads`` then cuts the C channels into h heads of C // h channels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .scaled_dot_product_attention import scaled_dot_product_attention


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, C) -> (B, h, T, C // h)."""
    if x.dim() != 3:
        raise ValueError(f"split_heads expects (B, T, C); got shape {tuple(x.shape)}")
    B, T, C = x.shape
    if C % num_heads != 0:
        raise ValueError(f"channels C={C} are not divisible by num_heads={num_heads}")
    # (B, T, C) -> (B, T, h, hs) -> (B, h, T, hs)
    return x.view(B, T, num_heads, C // num_heads).transpose(1, 2)


def combine_heads(x: Tensor) -> Tensor:
    """(B, h, T, hs) -> (B, T, h * hs), the inverse of ``split_heads``."""
    if x.dim() != 4:
        raise ValueError(f"combine_heads expects (B, h, T, hs); got shape {tuple(x.shape)}")
    B, h, T, hs = x.shape
    # (B, h, T, hs) -> (B, T, h, hs) -> (B, T, h * hs); contiguous() because transpose
    # only changes strides and view needs a contiguous block.
    return x.transpose(1, 2).contiguous().view(B, T, h * hs)


class MultiHeadAttention(nn.Module):
    """Multi-head (self- or cross-) attention with batch-first tensors.

    forward(query, key=None, value=None, mask=None)
        -> (output (B, T_q, C), weights (B, h, T_q, T_k))
    ``mask`` is boolean, True = may attend, broadcastable to (B, h, T_q, T_k); a 3-D mask
    (B, T_q, T_k) is taken to mean the same for every head.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if num_heads <= 0 or d_model % num_heads != 0:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}): each head gets "
                f"d_model // num_heads channels. Pick num_heads that divides {d_model}."
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        return split_heads(x, self.num_heads)

    def combine_heads(self, x: Tensor) -> Tensor:
        return combine_heads(x)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        if key is None:
            key = query  # self-attention
        if value is None:
            value = key
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.size(-1) != self.d_model:
                raise ValueError(
                    f"{name} must be (B, T, d_model={self.d_model}) (batch first); "
                    f"got {tuple(t.shape)}"
                )
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(1)  # (B, T_q, T_k) -> (B, 1, T_q, T_k): same for every head

        q = self.split_heads(self.q_proj(query))  # (B, T_q, C) -> (B, h, T_q, hs)
        k = self.split_heads(self.k_proj(key))  # (B, T_k, C) -> (B, h, T_k, hs)
        v = self.split_heads(self.v_proj(value))  # (B, T_k, C) -> (B, h, T_k, hs)
        out, weights = scaled_dot_product_attention(
            q, k, v, mask=mask, dropout_p=self.dropout, training=self.training
        )  # out: (B, h, T_q, hs), weights: (B, h, T_q, T_k)
        out = self.out_proj(self.combine_heads(out))  # (B, h, T_q, hs) -> (B, T_q, C)
        return out, weights


@torch.no_grad()
def copy_weights_from_torch(mha: MultiHeadAttention, torch_mha: nn.MultiheadAttention) -> None:
    """Copy the weights of a ``torch.nn.MultiheadAttention`` into ``mha`` (same math after).

    torch packs the three input projections into one (3 C, C) ``in_proj_weight`` whose rows
    are [W_q; W_k; W_v]; chunk(3) along dim 0 splits it back into three (C, C) matrices.
    """
    if torch_mha.embed_dim != mha.d_model or torch_mha.num_heads != mha.num_heads:
        raise ValueError(
            f"shape mismatch: torch layer has embed_dim={torch_mha.embed_dim}, "
            f"num_heads={torch_mha.num_heads}; ours has d_model={mha.d_model}, "
            f"num_heads={mha.num_heads}"
        )
    if torch_mha.in_proj_weight is None:
        raise ValueError("torch layer uses separate kdim/vdim projections; not supported here")
    if (torch_mha.in_proj_bias is None) != (mha.q_proj.bias is None):
        raise ValueError(
            "one layer has biases and the other does not; build both with the same bias"
        )
    w_q, w_k, w_v = torch_mha.in_proj_weight.chunk(3, dim=0)  # (3C, C) -> 3 x (C, C)
    for proj, w in ((mha.q_proj, w_q), (mha.k_proj, w_k), (mha.v_proj, w_v)):
        proj.weight.copy_(w)
    mha.out_proj.weight.copy_(torch_mha.out_proj.weight)
    if torch_mha.in_proj_bias is not None:
        b_q, b_k, b_v = torch_mha.in_proj_bias.chunk(3)  # (3C,) -> 3 x (C,)
        mha.q_proj.bias.copy_(b_q)
        mha.k_proj.bias.copy_(b_k)
        mha.v_proj.bias.copy_(b_v)
        mha.out_proj.bias.copy_(torch_mha.out_proj.bias)


__all__ = ["MultiHeadAttention", "combine_heads", "copy_weights_from_torch", "split_heads"]
