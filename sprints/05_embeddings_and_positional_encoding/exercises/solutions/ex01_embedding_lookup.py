"""Solution 1: a one-hot row times the table picks one row of the table."""

import torch
import torch.nn.functional as F


def embedding_lookup(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return F.one_hot(ids, weight.size(0)).to(weight.dtype) @ weight  # (..., V) @ (V, D)
