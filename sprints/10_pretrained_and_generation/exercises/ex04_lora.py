"""Exercise 4: a LoRA linear layer (notes/04_lora_and_gguf.md)."""

import torch
from torch import nn


class LoRALinear(nn.Module):
    """base(x) + (alpha / r) * x @ A.T @ B.T, with the base frozen; B starts at zero."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / r
        self.lora_a = nn.Parameter(torch.randn(r, base.in_features) / r)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("hint: self.base(x) + self.scale * (x @ self.lora_a.T) @ ...")

    def merged_weight(self) -> torch.Tensor:
        """The single weight matrix (out, in) that gives the same output as forward."""
        raise NotImplementedError("hint: W + scale * B @ A")
