"""PCA of handwritten-digit embeddings: from-scratch SVD vs scikit-learn, and pictures.

Projects two embeddings of scikit-learn's digits to 2-D: the raw 64 pixels and the hidden
layer of a small MLP trained here. Checks that ``pca.pca`` equals ``sklearn.decomposition.PCA``
up to the sign of each component, then draws:
- ``pca_digits.png``: both projections side by side, colored by digit;
- ``pca_explained_variance.png``: how much variance each component keeps.

    uv run python -m sprints.05_embeddings_and_positional_encoding.results.pca_example
"""

from __future__ import annotations

import argparse
import time
from importlib import import_module

from .cli import add_common_args

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--n-components", type=arg_types.positive_int, default=10,
                        help="components kept for the explained-variance plot")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")  # headless: draw to files, never open a window
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from sklearn.decomposition import PCA

    from .digits_embeddings import digits_embeddings
    from .embedding_plots import save_figure, scatter_by_class
    from .pca import pca

    # The models here are tiny: a second thread only adds synchronization overhead.
    torch.set_num_threads(1)

    start = time.perf_counter()
    emb = digits_embeddings(args.n_samples, args.hidden, args.epochs, args.seed)
    print(f"digits: {len(emb.labels)} samples; MLP held-out accuracy {emb.test_accuracy:.3f}")

    results = {}
    for name, features in (("raw pixels", emb.raw), ("MLP hidden layer", emb.hidden)):
        k = min(args.n_components, *features.shape)
        ours = pca(torch.from_numpy(features), n_components=k)
        ref = PCA(n_components=k, svd_solver="full").fit(features.astype(np.float64))
        ref_proj = ref.transform(features.astype(np.float64))
        # Directions are defined up to sign: align each of ours to sklearn's before comparing.
        signs = np.sign((ours.components.numpy() * ref.components_).sum(axis=1))
        comp_err = np.abs(ours.components.numpy() * signs[:, None] - ref.components_).max()
        proj_err = np.abs(ours.projected.numpy() * signs - ref_proj).max()
        var_err = np.abs(ours.explained_variance.numpy() - ref.explained_variance_).max()
        print(f"{name:17s} ({features.shape[1]}-D): max |ours - sklearn| components "
              f"{comp_err:.1e}, projections {proj_err:.1e}, variances {var_err:.1e}; "
              f"first 2 components keep {ours.explained_variance_ratio[:2].sum():.1%}")
        results[name] = ours

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, (name, res) in zip(axes, results.items(), strict=True):
        ratio = res.explained_variance_ratio
        scatter_by_class(ax, res.projected[:, :2].numpy(), emb.labels,
                         f"PCA of {name} ({ratio[:2].sum():.0%} of variance)",
                         f"PC 1 ({ratio[0]:.0%})", f"PC 2 ({ratio[1]:.0%})")
    fig.suptitle("Digits projected on their first two principal components")
    print("wrote", save_figure(fig, args.out_dir, "pca_digits.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in results.items():
        ratio = res.explained_variance_ratio.numpy()
        ks = np.arange(1, len(ratio) + 1)
        ax.plot(ks, np.cumsum(ratio), marker="o", label=f"{name} (cumulative)")
    ax.set_title("Variance kept by the first k principal components")
    ax.set_xlabel("number of components k")
    ax.set_ylabel("fraction of total variance")
    ax.set_ylim(0, 1)
    ax.legend()
    print("wrote", save_figure(fig, args.out_dir, "pca_explained_variance.png"))
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
