"""Solution 4: weight each micro-batch's mean loss by its share of the samples."""

import torch
from torch import nn


def accumulate_gradients(model: nn.Module, loss_fn, micro_batches: list[tuple[torch.Tensor,
                         torch.Tensor]]) -> float:
    model.zero_grad(set_to_none=True)
    total = sum(len(x) for x, _ in micro_batches)
    mean_loss = 0.0
    for x, y in micro_batches:
        loss = loss_fn(model(x), y) * (len(x) / total)  # backward() adds into .grad
        loss.backward()
        mean_loss += loss.item()
    return mean_loss
