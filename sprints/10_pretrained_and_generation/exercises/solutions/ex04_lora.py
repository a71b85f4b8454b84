"""Solution 4: LoRA adds a rank-r update that can be merged into the weight."""

import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / r
        self.lora_a = nn.Parameter(torch.randn(r, base.in_features) / r)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.lora_a.T) @ self.lora_b.T  # (.., r) first

    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + self.scale * self.lora_b @ self.lora_a
