"""Exercise 3: gradient clipping by global norm (notes/04_training_loop.md)."""

import torch


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """Scale every p.grad in place so that their joint L2 norm is at most max_norm.

    Returns the norm before clipping. Parameters whose .grad is None are skipped.
    """
    raise NotImplementedError(
        "hint: total = sqrt(sum of every grad's squared sum); if total > max_norm multiply "
        "each grad by max_norm / total")
