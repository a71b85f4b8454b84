"""Exercise 2: GELU, tanh approximation, as GPT-2 uses it (notes/03_feed_forward_network.md)."""

import torch


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    raise NotImplementedError("hint: write the formula in the docstring with torch.tanh")
