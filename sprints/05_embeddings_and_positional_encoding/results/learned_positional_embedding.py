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
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: Tensor) -> Tensor:
        T = x.size(1)
        if T > self.max_len:
            raise ValueError(
                f"sequence length {T} exceeds max_len {self.max_len}: a learned table has no "
                "row for later positions; build it with a larger max_len"
            )
        positions = torch.arange(T, device=x.device)  # (T,)
        return x + self.embedding(positions)  # (B, T, C) + (T, C)
