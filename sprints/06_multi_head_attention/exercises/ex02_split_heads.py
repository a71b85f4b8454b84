"""Exercise 2: split the model width into heads and merge it back
(notes/02_multi_head_attention.md)."""

import torch


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, n_heads, T, C // n_heads); head h gets channels [h*hs, (h+1)*hs)."""
    raise NotImplementedError("hint: view as (B, T, n_heads, hs), then swap dims 1 and 2")


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_heads, T, hs) -> (B, T, n_heads * hs), the inverse of split_heads."""
    raise NotImplementedError("hint: transpose back, then .contiguous().view(B, T, C)")
