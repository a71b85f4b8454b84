"""Solution 2: sums and sums of squares, in float64 so E[x^2] - E[x]^2 keeps its digits."""

from collections.abc import Iterable

import torch


def channel_mean_std(batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    count, total, total_sq = 0, 0.0, 0.0
    for batch in batches:
        x = batch.double()
        count += x.numel() // x.size(1)  # pixels per channel
        total = total + x.sum(dim=(0, 2, 3))  # (C,)
        total_sq = total_sq + (x**2).sum(dim=(0, 2, 3))
    mean = total / count
    return mean.float(), (total_sq / count - mean**2).sqrt().float()
