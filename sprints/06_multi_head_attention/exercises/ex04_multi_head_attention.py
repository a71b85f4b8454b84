"""Exercise 4: multi-head self-attention from its weights (notes/02_multi_head_attention.md).

The weights are laid out as in torch.nn.MultiheadAttention, so the check can compare.
"""

import torch


def multi_head_attention(x: torch.Tensor, in_proj_weight: torch.Tensor,
                         in_proj_bias: torch.Tensor, out_proj_weight: torch.Tensor,
                         out_proj_bias: torch.Tensor, n_heads: int, causal: bool) -> torch.Tensor:
    """Self-attention over x (B, T, C) with n_heads heads; returns (B, T, C).

    in_proj_weight (3C, C) and in_proj_bias (3C,) stack the q, k and v projections in that
    order; out_proj_weight (C, C) and out_proj_bias (C,) project the merged heads.
    """
    raise NotImplementedError(
        "hint: q, k, v = (x @ W_in.T + b_in).chunk(3, -1); split heads; attention; merge; project")
