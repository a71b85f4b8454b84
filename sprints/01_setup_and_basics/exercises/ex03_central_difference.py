"""Exercise 3: a gradient by central differences (notes/02c_autograd.md, "Checking a gradient")."""

from collections.abc import Callable

import torch


def central_difference_grad(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                            eps: float = 1e-6) -> torch.Tensor:
    """Estimate the gradient of the scalar function ``f`` at ``x`` (any shape, float64).

    Returns a tensor shaped like ``x`` whose element i is (f(x + eps e_i) - f(x - eps e_i)) / 2eps.
    """
    raise NotImplementedError(
        "hint: loop over x.flatten() indices; nudge one element up and down, leave x unchanged")
