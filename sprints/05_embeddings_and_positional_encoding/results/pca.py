"""PCA from scratch with one SVD, the way scikit-learn's ``PCA(svd_solver="full")`` does it.

Center the data, X_c = X - mean. Its SVD X_c = U S V^T gives everything:
- the principal directions are the rows of V^T (unit vectors, largest variance first);
- the projection of the data on them is X_c V = U S;
- the variance along direction k is S_k^2 / (n - 1).
Each direction's sign is arbitrary (-v is as good as v); ``flip_signs`` makes the
largest-magnitude entry of each direction positive so runs are repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PCAResult:
    components: Tensor  # (k, D) principal directions, one per row
    projected: Tensor  # (N, k) the data in the new coordinates
    explained_variance: Tensor  # (k,) variance along each direction
    explained_variance_ratio: Tensor  # (k,) the same as a fraction of the total variance
    mean: Tensor  # (D,) subtracted before projecting


def pca(x: Tensor, n_components: int = 2, flip_signs: bool = True) -> PCAResult:
    """Principal component analysis of x (N, D) in float64."""
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D (samples, features) matrix; got shape {tuple(x.shape)}")
    n, d = x.shape
    if not 1 <= n_components <= min(n, d):
        raise ValueError(
            f"n_components must be between 1 and min(samples, features) = {min(n, d)}; "
            f"got {n_components}"
        )
    x = x.to(torch.float64)
    mean = x.mean(dim=0)  # (D,)
    xc = x - mean  # (N, D) every feature now has mean 0
    # Thin SVD: U (N, r), S (r,), Vh (r, D) with r = min(N, D); S sorted large to small.
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    if flip_signs:
        # The sign of each (u_k, v_k) pair is arbitrary; fix it so the biggest entry of v_k > 0.
        biggest = vh.abs().argmax(dim=1)  # (r,)
        signs = torch.sign(vh[torch.arange(vh.size(0)), biggest])  # (r,)
        u, vh = u * signs, vh * signs.unsqueeze(1)
    components = vh[:n_components]  # (k, D)
    projected = u[:, :n_components] * s[:n_components]  # (N, k), equals xc @ components.T
    variance = s**2 / (n - 1)  # (r,) sample variance along each direction
    total = xc.pow(2).sum() / (n - 1)  # total variance = trace of the covariance matrix
    return PCAResult(
        components=components,
        projected=projected,
        explained_variance=variance[:n_components],
        explained_variance_ratio=variance[:n_components] / total,
        mean=mean,
    )
