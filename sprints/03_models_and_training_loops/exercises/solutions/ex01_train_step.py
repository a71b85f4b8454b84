"""Solution 1: the four lines of every training loop."""

import torch
from torch import nn


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn,
               x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    optimizer.zero_grad(set_to_none=True)  # .grad accumulates otherwise
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
