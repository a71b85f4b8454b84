"""Learned positional embeddings: one trainable vector per position, as GPT-2 does.

Unlike the sinusoidal table, these vectors start random and are learned by gradient
descent. The price: ``max_len * d_model`` more parameters and no positions beyond
``max_len`` (there is no row to look up).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LearnedPositionalEmbedding(nn.Module):
    """x (B, T, C) -> x + embedding(arange(T))."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        if max_len < 1 or d_model < 1:
            raise ValueError(f"max_len and d_model must be positive; got {max_len} and {d_model}")
        self.max_len = max_len
        self.d_model = d_model
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: Tensor) -> Tensor:
        # Shape checks only, so they cost nothing on any device.
        if x.dim() != 3:
            raise ValueError(
                f"expected embeddings of shape (B, T, d_model); got {x.dim()}-D shape "
                f"{tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0), or embed token "
                "ids (B, T) first"
            )
        if x.size(-1) != self.d_model:
            raise ValueError(
                f"embedding width {x.size(-1)} does not match d_model {self.d_model}; build "
                f"the module with d_model={x.size(-1)} or embed tokens into {self.d_model} "
                "dimensions"
            )
        T = x.size(1)
        if T > self.max_len:
            raise ValueError(
                f"sequence length {T} exceeds max_len {self.max_len}: a learned table has no "
                "row for later positions; build it with a larger max_len"
            )
        positions = torch.arange(T, device=x.device)  # (T,)
        return x + self.embedding(positions)  # (B, T, C) + (T, C)
