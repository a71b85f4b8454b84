"""Solution 1: the causal mask is the lower triangle, diagonal included."""

import torch


def causal_mask(t: int) -> torch.Tensor:
    return torch.tril(torch.ones(t, t, dtype=torch.bool))
