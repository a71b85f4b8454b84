"""Solution 4: project, split into heads, attend, merge, project."""

import math

import torch


def multi_head_attention(x: torch.Tensor, in_proj_weight: torch.Tensor,
                         in_proj_bias: torch.Tensor, out_proj_weight: torch.Tensor,
                         out_proj_bias: torch.Tensor, n_heads: int, causal: bool) -> torch.Tensor:
    b, t, c = x.shape
    hs = c // n_heads
    q, k, v = (x @ in_proj_weight.T + in_proj_bias).chunk(3, dim=-1)  # 3 x (B, T, C)
    q, k, v = (z.view(b, t, n_heads, hs).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hs)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, T, T)
    if causal:
        allowed = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    heads = torch.softmax(scores, dim=-1) @ v  # (B, nh, T, hs)
    merged = heads.transpose(1, 2).contiguous().view(b, t, c)
    return merged @ out_proj_weight.T + out_proj_bias
