"""Checks for the sprint 5 exercises; references: F.embedding and its gradient, the formula
evaluated with math.sin/math.cos one element at a time, scikit-learn's PCA."""

import math

import torch
import torch.nn.functional as F

from sprints.check import expect_close


def check_ex01_embedding_lookup(m):
    weight = torch.randn(9, 4, requires_grad=True)
    ids = torch.tensor([[1, 8, 1], [0, 3, 3]])
    ref_weight = weight.detach().clone().requires_grad_()
    got = m.embedding_lookup(weight, ids)
    expected = F.embedding(ids, ref_weight)
    expect_close(f"embedding_lookup(weight (9, 4), ids {ids.tolist()})", got, expected)
    upstream = torch.randn_like(expected)
    got.backward(upstream)
    expected.backward(upstream)
    expect_close("the gradient on weight through embedding_lookup", weight.grad, ref_weight.grad)


def check_ex02_sinusoidal_pe(m):
    for max_len, d in [(1, 2), (6, 4), (50, 16)]:
        expected = torch.tensor([[(math.sin if i % 2 == 0 else math.cos)(
            pos / 10000 ** ((i - i % 2) / d)) for i in range(d)] for pos in range(max_len)])
        expect_close(f"sinusoidal_pe(max_len={max_len}, d_model={d})",
                     m.sinusoidal_pe(max_len, d), expected)


def check_ex03_pca(m):
    from sklearn.decomposition import PCA

    x = torch.randn(40, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    for k in [1, 3]:
        reference = PCA(n_components=k).fit(x.numpy())
        projected, variance = m.pca_project(x, k)
        call = f"pca_project(x of shape (40, 6), k={k})"
        expect_close(f"explained variance of {call} against sklearn's PCA", variance,
                     torch.from_numpy(reference.explained_variance_), atol=1e-8)
        expected = torch.from_numpy(reference.transform(x.numpy()))
        if not isinstance(projected, torch.Tensor) or projected.shape != expected.shape:
            expect_close(f"projection of {call}", projected, expected)
        # A component's sign is arbitrary: align each column's sign before comparing.
        signs = torch.sign((projected * expected).sum(dim=0))
        expect_close(f"projection of {call} against sklearn's PCA (signs aligned)",
                     projected * signs, expected, atol=1e-8)


CHECKS = [check_ex01_embedding_lookup, check_ex02_sinusoidal_pe, check_ex03_pca]
