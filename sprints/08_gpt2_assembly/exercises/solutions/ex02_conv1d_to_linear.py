"""Solution 2: the transpose that makes HF's Conv1D an nn.Linear."""

import torch
from torch import nn


def conv1d_to_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    n_in, n_out = weight.shape
    linear = nn.Linear(n_in, n_out)
    with torch.no_grad():
        linear.weight.copy_(weight.T)  # (in, out) -> (out, in)
        linear.bias.copy_(bias)
    return linear
