"""A small demo function with a known derivative, and a central finite-difference gradient.

    f(x) = sum_i x_i^2 * sin(x_i)          df/dx_i = 2 x_i sin(x_i) + x_i^2 cos(x_i)

Three independent ways to get the same gradient: the closed form above, autograd, and
central differences (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), whose error shrinks
like eps^2.
"""

from collections.abc import Callable

import torch


def demo_function(x: torch.Tensor) -> torch.Tensor:
    """Scalar f(x) = sum(x^2 * sin(x))."""
    return (x**2 * torch.sin(x)).sum()


def demo_function_grad(x: torch.Tensor) -> torch.Tensor:
    """The closed-form gradient of ``demo_function``, derived with the product rule."""
    return 2 * x * torch.sin(x) + x**2 * torch.cos(x)


def central_difference_grad(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Numerical gradient of a scalar function, one coordinate at a time."""
    if x.dtype != torch.float64:
        # In float32 the difference f(x+eps) - f(x-eps) loses most digits to rounding.
        raise TypeError(f"use a float64 tensor for finite differences, got {x.dtype}")
    x = x.detach().clone()
    grad = torch.empty_like(x)
    flat_x, flat_g = x.view(-1), grad.view(-1)  # views: writing flat_x[i] nudges x
    for i in range(flat_x.numel()):
        orig = flat_x[i].item()
        flat_x[i] = orig + eps
        f_plus = f(x).item()
        flat_x[i] = orig - eps
        f_minus = f(x).item()
        flat_x[i] = orig
        flat_g[i] = (f_plus - f_minus) / (2 * eps)
    return grad
