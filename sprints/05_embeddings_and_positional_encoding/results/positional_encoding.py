"""Sinusoidal positional encoding ("Attention Is All You Need", section 3.5).

    PE[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

Each pair of dimensions (2i, 2i+1) is a clock hand turning at its own speed: fast for
small i, very slow for large i. Together they give every position a unique fingerprint,
and PE[pos + k] is a fixed rotation of PE[pos], which makes relative offsets easy to read.

Two ways to use the table:
- ``PositionalEncoding`` adds PE[:T] to a batch of embeddings (B, T, C), batch first.
  ``PositionalEncodingBatchFirst`` is the same class under its earlier name (sprint 8
  imports that name).
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
    if d_model < 2 or d_model % 2 != 0:
        raise ValueError(
            f"d_model must be a positive even number for sin/cos pairs; got {d_model}. "
            "Use an even embedding size."
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


class PositionalEncoding(nn.Module):
    """x (B, T, C) -> x + PE[:T], then dropout. No trainable parameters.

    Batch first, like every module of this repository: the table's rows are added along
    dimension 1 (positions) and broadcast over dimension 0 (the batch).
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        # Not persistent: the table is a formula, so it does not belong in a state dict.
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        # Shape checks only (no look at the values), so they cost nothing on any device.
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
                f"sequence length {T} exceeds max_len {self.max_len}; "
                "build the module with a larger max_len"
            )
        # (B, T, C) + (T, C): broadcasting adds the same position vectors to every sequence.
        return self.dropout(x + self.pe[:T].to(x.dtype))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


# The earlier name, which says the layout; the same class, so both names behave alike.
PositionalEncodingBatchFirst = PositionalEncoding


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
        if positions.dtype not in (torch.long, torch.int):
            raise TypeError(
                f"positions must be an integer tensor (torch.long); got {positions.dtype}. "
                "Build them with torch.arange(T) or convert with .long()"
            )
        # The range check reads the values. On the CPU that is a cheap reduction; on an
        # accelerator it would wait for the device at every call, so it is skipped there
        # (the GPT of sprint 8 checks past + T against block_size before looking up), and
        # under torch.compile, where a data-dependent branch would split the graph.
        if (
            positions.device.type == "cpu"
            and positions.numel()
            and not torch.compiler.is_compiling()
            and (positions.min() < 0 or positions.max() >= self.num_positions)
        ):
            raise IndexError(
                f"positions must lie in [0, {self.num_positions - 1}]; got values from "
                f"{int(positions.min())} to {int(positions.max())}. Build the module with "
                "num_positions larger than the longest sequence"
            )
        return self.weight[positions]

    def extra_repr(self) -> str:
        return f"{self.num_positions}, {self.embedding_dim}"
