"""Solution 1: the target of position t is the token at t + 1."""

import torch


def inputs_and_targets(tokens: torch.Tensor, starts: list[int], block_size: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack([tokens[s:s + block_size] for s in starts])  # (B, T)
    y = torch.stack([tokens[s + 1:s + 1 + block_size] for s in starts])  # (B, T)
    return x, y
