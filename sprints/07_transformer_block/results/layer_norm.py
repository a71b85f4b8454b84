"""Layer normalization from scratch (Ba, Kiros & Hinton, 2016).

    y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias

mean and var are taken over the LAST dimension only (the C features of one token), with
the biased variance (divide by C, not C - 1), exactly as ``torch.nn.LayerNorm(C)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list, torch.Size)):
            if len(normalized_shape) != 1:
                raise ValueError(
                    "this LayerNorm normalizes over the last dim only; pass an int "
                    f"(the feature size), got {tuple(normalized_shape)}"
                )
            normalized_shape = int(normalized_shape[0])
        self.normalized_shape = (int(normalized_shape),)
        self.eps = eps
        # Start as the identity map: scale 1, shift 0 (the network learns otherwise).
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.size(-1) != self.normalized_shape[0]:
            raise ValueError(
                f"LayerNorm({self.normalized_shape[0]}) got input with last dim {x.size(-1)}; "
                "the last dim must be the feature size the layer was built with"
            )
        mean = x.mean(dim=-1, keepdim=True)  # (..., C) -> (..., 1)
        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # biased variance, (..., 1)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)  # zero mean, unit variance per token
        y = x_hat * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape[0]}, eps={self.eps}, bias={self.bias is not None}"
