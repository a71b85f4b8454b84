"""Multi-head attention as an ``nn.Module``, built on the from-scratch attention function.

    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O

The h per-head projections are done as ONE d_model -> d_model Linear each for q, k and v;
``split_heads`` then cuts the C channels into h heads of C // h channels.
"""

from __future__ import annotations

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


__all__ = ["MultiHeadAttention", "combine_heads", "split_heads"]
