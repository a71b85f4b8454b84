"""Linear regression as an nn.Module, and the synthetic data it learns from.

    y = x @ w_true + b_true + noise,   x: (N, D), w_true: (D,), y: (N, 1)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset


class LinearRegression(nn.Module):
    """y_hat = x @ W^T + b with W: (1, D), b: (1,); one nn.Linear does exactly that."""

    def __init__(self, in_features: int) -> None:
        super().__init__()  # registers the machinery that tracks parameters and submodules
        self.linear = nn.Linear(in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (N, D) -> (N, 1)


def make_synthetic(
    n: int, true_w: torch.Tensor, true_b: float, noise_std: float = 0.1, seed: int = 0
) -> TensorDataset:
    """n samples x ~ N(0, I), y = x @ true_w + true_b + N(0, noise_std^2); y has shape (n, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(true_w), generator=g)
    y = x @ true_w + true_b + noise_std * torch.randn(n, generator=g)
    return TensorDataset(x, y.unsqueeze(1))  # (n,) -> (n, 1), the shape the model outputs
