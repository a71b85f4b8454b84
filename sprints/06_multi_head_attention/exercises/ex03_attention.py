"""Exercise 3: scaled dot-product attention (notes/01_scaled_dot_product_attention.md)."""

import torch


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q @ k^T / sqrt(d)) @ v for q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v).

    mask: bool, broadcastable to (..., T_q, T_k), True where attending is allowed.
    """
    raise NotImplementedError(
        "hint: scores = q @ k.transpose(-2, -1) / sqrt(d); masked_fill(~mask, -inf); softmax(-1)")
