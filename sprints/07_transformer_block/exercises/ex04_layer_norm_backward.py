"""Exercise 4: the backward pass of LayerNorm, by hand (notes/01_layer_norm.md)."""

import torch


def layer_norm_backward(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor,
                        eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of out = (x - mean) / sqrt(var + eps) * weight + bias over the last dim.

    Returns (grad_x shaped like x, grad_weight (C,), grad_bias (C,)).
    """
    raise NotImplementedError(
        "hint: g = grad_out * weight; grad_x = (g - mean(g) - xhat * mean(g * xhat)) / std")
