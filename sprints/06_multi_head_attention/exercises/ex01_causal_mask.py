"""Exercise 1: the causal mask (notes/03_attention_masking.md)."""

import torch


def causal_mask(t: int) -> torch.Tensor:
    """A (t, t) bool tensor, True where query position i may attend to key position j (j <= i)."""
    raise NotImplementedError("hint: torch.ones(t, t, dtype=torch.bool) and a triangle of it")
