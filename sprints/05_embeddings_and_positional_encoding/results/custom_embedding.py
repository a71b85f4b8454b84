"""An embedding layer written by hand: a trainable table and a row lookup.

``nn.Embedding`` is nothing more than this. ``CustomEmbedding`` gives the same outputs
and the same gradients (tests/test_sprint05.py proves it against ``nn.Embedding``):
indexing ``weight[indices]`` is differentiable, and its backward pass adds each output's
gradient into the row it came from, so rows that were not looked up get exactly zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CustomEmbedding(nn.Module):
    """indices (...) LongTensor -> weight[indices] (..., embedding_dim)."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(
                "num_embeddings and embedding_dim must be positive; "
                f"got {num_embeddings} and {embedding_dim}"
            )
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        # Same initialisation as nn.Embedding: every entry drawn from N(0, 1).
        self.weight = nn.Parameter(torch.randn(num_embeddings, embedding_dim))

    def forward(self, indices: Tensor) -> Tensor:
        if indices.dtype not in (torch.long, torch.int):
            raise TypeError(
                f"indices must be an integer tensor (torch.long); got {indices.dtype}. "
                "Token ids are categories, not numbers: convert with .long()"
            )
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_embeddings):
            raise IndexError(
                f"indices must lie in [0, {self.num_embeddings - 1}]; got values from "
                f"{int(indices.min())} to {int(indices.max())}. Grow num_embeddings "
                "or check the tokenizer's vocabulary size"
            )
        # (num_embeddings, D)[(...)] -> (..., D): one row copied per index.
        return self.weight[indices]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
