"""Exercise 4: the backward pass of a linear layer (notes/02d_hidden_layer_network.md)."""

import torch


def linear_backward(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``out = x @ weight.T + bias`` given d loss / d out.

    x: (N, D_in), weight: (D_out, D_in), grad_out: (N, D_out).
    Returns (grad_x (N, D_in), grad_weight (D_out, D_in), grad_bias (D_out,)).
    """
    raise NotImplementedError(
        "hint: each gradient is a matrix product of grad_out with x or weight; check the shapes")
