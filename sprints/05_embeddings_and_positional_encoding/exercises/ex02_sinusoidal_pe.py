"""Exercise 2: sinusoidal positional encoding (notes/03_positional_encoding_notes.md)."""

import torch


def sinusoidal_pe(max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, d_model), d_model even: PE[pos, 2i] = sin(pos / 10000^(2i / d_model)) and
    PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))."""
    raise NotImplementedError(
        "hint: positions (max_len, 1) times frequencies (d_model / 2,); fill [:, 0::2], [:, 1::2]")
