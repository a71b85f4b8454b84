"""The same one-hidden-layer network as an ``nn.Module``; autograd derives the backward pass.

Compare with ``manual_mlp.py``: the forward pass is the same three lines, and the fifteen
lines of hand-written ``backward`` shrink to ``loss.backward()``.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .digits_data import batch_order
from .manual_mlp import ManualMLP


class TorchMLP(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.hidden = nn.Linear(n_in, n_hidden)  # weight (H, D), bias (H,)
        self.out = nn.Linear(n_hidden, n_out)  # weight (C, H), bias (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nn.Linear computes x @ weight.T + bias, so weight is stored (out, in).
        return self.out(torch.tanh(self.hidden(x)))  # (N, D) -> (N, H) -> (N, C)

    @torch.no_grad()
    def copy_from_manual(self, manual: ManualMLP) -> "TorchMLP":
        """Load a ManualMLP's weights (stored (in, out)) so both start from one point."""
        expected = (self.hidden.in_features, self.hidden.out_features, self.out.out_features)
        got = (manual.W1.shape[0], manual.W1.shape[1], manual.W2.shape[1])
        if got != expected:
            raise ValueError(f"ManualMLP sizes {got} do not match TorchMLP sizes {expected}")
        self.hidden.weight.copy_(manual.W1.T)
        self.hidden.bias.copy_(manual.b1)
        self.out.weight.copy_(manual.W2.T)
        self.out.bias.copy_(manual.b2)
        return self


def train_torch(
    model: TorchMLP,
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> list[float]:
    """Mini-batch SGD with autograd; same batches as ``train_manual`` for the same seed."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    history = []
    for _ in range(epochs):
        total = 0.0
        for idx in batch_order(len(X), batch_size, gen):
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()  # .grad accumulates across backward() calls; clear last step's
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(X))
    return history
