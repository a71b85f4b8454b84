"""Solution 4: linear layer backward."""

import torch


def linear_backward(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_x = grad_out @ weight  # (N, D_out) @ (D_out, D_in)
    grad_weight = grad_out.T @ x  # (D_out, N) @ (N, D_in)
    grad_bias = grad_out.sum(dim=0)  # the bias is added to every row
    return grad_x, grad_weight, grad_bias
