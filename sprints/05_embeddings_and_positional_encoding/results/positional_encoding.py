"""Sinusoidal positional encoding ("Attention Is All You Need", section 3.5).

    PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

Each pair of dimensions (2i, 2i+1) is a clock hand turning at its own speed: fast for
small i, very slow for large i. Together they give every position a unique fingerprint,
and PE[pos + k] is a fixed rotation of PE[pos], which makes relative offsets easy to read.

Two ways to use the table:
- ``PositionalEncodingBatchFirst`` adds PE[:T] to a batch of embeddings (B, T, C).
- ``SinusoidalPositionalEmbedding`` looks rows up by position id, exactly like
  ``nn.Embedding(num_positions, dim)`` but with no parameters; the GPT of sprint 8 uses it,
  since looking up positions lets a KV cache start at position ``past`` instead of 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """The table PE of shape (max_len, d_model), float32."""
    if d_model % 2 != 0:
        raise ValueError(
            f"d_model must be even for sin/cos pairs; got {d_model}. Use an even embedding size."
        )
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1; got {max_len}")
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (max_len, 1)
    # 1 / 10000^(2i/d) computed as exp(-(2i) * ln(10000) / d) for numerical stability.
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )  # (d_model/2,)
    angles = position * inv_freq  # (max_len, 1) * (d_model/2,) -> (max_len, d_model/2)
    pe = torch.empty(max_len, d_model)
    pe[:, 0::2] = torch.sin(angles)  # even dimensions
    pe[:, 1::2] = torch.cos(angles)  # odd dimensions
    return pe


class PositionalEncodingBatchFirst(nn.Module):
    """x (B, T, C) -> x + PE[:T], then dropout. No trainable parameters."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        # Not persistent: the table is a formula, so it does not belong in a state dict.
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        T = x.size(1)
        if T > self.pe.size(0):
            raise ValueError(
                f"sequence length {T} exceeds max_len {self.pe.size(0)}; "
                "build the module with a larger max_len"
            )
        # (B, T, C) + (T, C): broadcasting adds the same position vectors to every sequence.
        return self.dropout(x + self.pe[:T].to(x.dtype))


class SinusoidalPositionalEmbedding(nn.Module):
    """positions (...) -> PE[positions] (..., embedding_dim); a parameter-free nn.Embedding."""

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__()
        self.num_positions = num_positions
        self.embedding_dim = embedding_dim
        self.register_buffer(
            "weight", sinusoidal_encoding(num_positions, embedding_dim), persistent=False
        )

    def forward(self, positions: Tensor) -> Tensor:
        return self.weight[positions]

    def extra_repr(self) -> str:
        return f"{self.num_positions}, {self.embedding_dim}"
