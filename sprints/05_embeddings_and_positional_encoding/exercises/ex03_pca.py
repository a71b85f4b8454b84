"""Exercise 3: PCA by SVD (notes/05a_pca_explained_novice.md)."""

import torch


def pca_project(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Project the rows of ``x`` (N, D) onto the first k principal components.

    Returns (projected (N, k), explained_variance (k,), the variance along each component,
    with N - 1 in the denominator)."""
    raise NotImplementedError(
        "hint: centre the columns, torch.linalg.svd(xc, full_matrices=False); xc @ Vh[:k].T")
