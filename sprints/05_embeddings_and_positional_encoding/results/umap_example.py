"""UMAP (umap-learn) of handwritten-digit embeddings: raw pixels vs a trained MLP's features.

UMAP builds a k-nearest-neighbor graph and lays it out in 2-D; it keeps local clusters
like t-SNE and tends to keep more of the global layout. Draws ``umap_digits.png`` (raw
pixels and MLP hidden layer side by side) and ``umap_neighbors.png`` (raw pixels at
several ``n_neighbors``). Importing umap and its first call compile code with numba,
which costs several seconds; the script prints how long.

    uv run python -m sprints.05_embeddings_and_positional_encoding.results.umap_example
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
    # Like t-SNE: 1000 of the 1797 digits keep the run (numba compilation included) under a
    # minute on 2 cores; --n-samples 1797 draws them all.
    parser.set_defaults(n_samples=1000)
    parser.add_argument("--n-neighbors", type=int, default=15,
                        help="size of the neighborhood UMAP treats as local")
    parser.add_argument("--min-dist", type=arg_types.non_negative_float, default=0.1,
                        help="how tightly points may be packed in the picture")
    parser.add_argument("--neighbors-sweep", type=int, nargs="*", default=[5, 50],
                        help="extra n_neighbors drawn for comparison (none: skip that PNG; values "
                             "below 2 or not below --n-samples are left out)")
    args = parser.parse_args(argv)
    if args.n_neighbors < 2:
        parser.error(f"--n-neighbors must be at least 2 (a point and one neighbor); "
                     f"got {args.n_neighbors}")
    if args.min_dist > 1.0:
        parser.error(f"--min-dist must be at most 1.0 (UMAP's spread); got {args.min_dist:g}")
    if args.n_neighbors >= args.n_samples:
        parser.error(f"--n-neighbors must be below the number of samples ({args.n_samples})")

    import matplotlib

    matplotlib.use("Agg")  # headless: draw to files, never open a window
    import matplotlib.pyplot as plt
    import torch

    from .digits_embeddings import digits_embeddings
    from .embedding_plots import save_figure, scatter_by_class

    # The models here are tiny: a second thread only adds synchronization overhead.
    torch.set_num_threads(1)

    start = time.perf_counter()
    import umap  # slow: pulls in numba and pynndescent

    print(f"import umap: {time.perf_counter() - start:.1f} s")
    emb = digits_embeddings(args.n_samples, args.hidden, args.epochs, args.seed)
    print(f"digits: {len(emb.labels)} samples; MLP held-out accuracy {emb.test_accuracy:.3f}")

    layouts = {}

    def embed(features, n_neighbors):
        t0 = time.perf_counter()
        # random_state makes the layout repeatable, which forces UMAP to one thread.
        reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=args.min_dist,
                            random_state=args.seed, n_jobs=1)
        points = reducer.fit_transform(features)
        first = "" if layouts else " (includes numba's compilation on first use)"
        print(f"  UMAP of {features.shape} with n_neighbors={n_neighbors}: "
              f"{time.perf_counter() - t0:.1f} s{first}")
        return points

    layouts["raw pixels", args.n_neighbors] = embed(emb.raw, args.n_neighbors)
    layouts["MLP hidden layer", args.n_neighbors] = embed(emb.hidden, args.n_neighbors)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, name in zip(axes, ("raw pixels", "MLP hidden layer"), strict=True):
        scatter_by_class(ax, layouts[name, args.n_neighbors], emb.labels,
                         f"UMAP of {name} (n_neighbors {args.n_neighbors})",
                         "UMAP 1", "UMAP 2")
    fig.suptitle("Digits embedded by UMAP: clusters are digit classes")
    print("wrote", save_figure(fig, args.out_dir, "umap_digits.png"))

    sweep = sorted({*(k for k in args.neighbors_sweep if 2 <= k < len(emb.labels)),
                    args.n_neighbors})
    if len(sweep) > 1:
        fig, axes = plt.subplots(1, len(sweep), figsize=(5 * len(sweep), 4.6))
        for ax, k in zip(axes, sweep, strict=True):
            if ("raw pixels", k) not in layouts:  # reuse the run drawn above
                layouts["raw pixels", k] = embed(emb.raw, k)
            scatter_by_class(ax, layouts["raw pixels", k], emb.labels, f"n_neighbors {k}",
                             "UMAP 1", "UMAP 2")
        fig.suptitle("UMAP of raw pixels: small n_neighbors = local detail, large = global shape")
        print("wrote", save_figure(fig, args.out_dir, "umap_neighbors.png"))
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
