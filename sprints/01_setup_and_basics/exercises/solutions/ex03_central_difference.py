"""Solution 3: central differences, one coordinate at a time."""

from collections.abc import Callable

import torch


def central_difference_grad(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                            eps: float = 1e-6) -> torch.Tensor:
    flat = x.detach().clone().flatten()
    grad = torch.zeros_like(flat)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        up = float(f(flat.view_as(x)))
        flat[i] = old - eps
        down = float(f(flat.view_as(x)))
        flat[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad.view_as(x)
