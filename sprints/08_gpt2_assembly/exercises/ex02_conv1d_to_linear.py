"""Exercise 2: load a Hugging Face Conv1D weight into nn.Linear (notes/06_hf_conversion.md)."""

import torch
from torch import nn


def conv1d_to_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    """HF's Conv1D computes x @ weight + bias with weight (in, out); return the equal nn.Linear."""
    raise NotImplementedError("hint: nn.Linear stores (out, in), so copy weight.T")
