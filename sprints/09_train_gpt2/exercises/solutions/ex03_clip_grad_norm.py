"""Solution 3: one norm over all gradients together, then one common scale."""

import torch


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
    if total > max_norm:
        for g in grads:
            g.mul_(max_norm / total)
    return total
