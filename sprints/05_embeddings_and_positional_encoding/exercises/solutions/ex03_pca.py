"""Solution 3: PCA is the SVD of the centred data."""

import torch


def pca_project(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    xc = x - x.mean(dim=0)
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)  # vh rows: the directions
    return xc @ vh[:k].T, s[:k] ** 2 / (len(x) - 1)
