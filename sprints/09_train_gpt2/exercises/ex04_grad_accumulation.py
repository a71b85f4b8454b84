"""Exercise 4: gradient accumulation over micro-batches (notes/04_training_loop.md)."""

import torch
from torch import nn


def accumulate_gradients(model: nn.Module, loss_fn, micro_batches: list[tuple[torch.Tensor,
                         torch.Tensor]]) -> float:
    """Leave in each p.grad the gradient of the mean loss over ALL samples of the micro-batches
    (which may differ in size), as one big batch would give; return that mean loss."""
    raise NotImplementedError(
        "hint: zero the grads, then backward loss_fn(model(x), y) * len(x) / total_samples "
        "for each micro-batch")
