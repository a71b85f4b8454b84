"""Exercise 1: one training step (notes/02_training_and_evaluation_loops.md)."""

import torch
from torch import nn


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn,
               x: torch.Tensor, y: torch.Tensor) -> float:
    """Forward, loss, backward, update; return the loss as a float. Old gradients must not
    leak into this step."""
    raise NotImplementedError("hint: zero_grad, loss_fn(model(x), y), backward, optimizer.step")
