"""Exercise 3: SGD with momentum and weight decay, by hand
(notes/02_training_and_evaluation_loops.md)."""

import torch


def sgd_momentum_step(params: list[torch.Tensor], buffers: list[torch.Tensor | None], lr: float,
                      momentum: float, weight_decay: float) -> list[torch.Tensor]:
    """Update each parameter in place from its .grad, as torch.optim.SGD does:
    g = grad + weight_decay * p; buf = g on the first step, else momentum * buf + g;
    p -= lr * buf. ``buffers[i]`` is None before the first step. Return the new buffers."""
    raise NotImplementedError("hint: work under torch.no_grad(); clone g for the first buffer")
