"""Solution 2: split_heads and merge_heads."""

import torch


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.view(b, t, n_heads, c // n_heads).transpose(1, 2)  # (B, nh, T, hs)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, nh, t, hs = x.shape
    return x.transpose(1, 2).contiguous().view(b, t, nh * hs)  # (B, T, C)
