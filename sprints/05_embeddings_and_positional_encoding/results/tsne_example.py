"""t-SNE (scikit-learn) of handwritten-digit embeddings: raw pixels vs a trained MLP's features.

t-SNE places similar points near each other and keeps local neighborhoods, not global
distances. Draws ``tsne_digits.png`` (raw pixels and MLP hidden layer side by side,
colored by digit) and ``tsne_perplexity.png`` (the raw pixels at three perplexities).

    uv run python -m sprints.05_embeddings_and_positional_encoding.results.tsne_example
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
    # t-SNE is the slow step (about N log N per iteration): 1000 of the 1797 digits keep it
    # well under a minute on 2 cores; --n-samples 1797 draws them all.
    parser.set_defaults(n_samples=1000)
    parser.add_argument("--perplexity", type=arg_types.positive_float, default=30.0,
                        help="roughly the number of neighbors each point cares about")
    parser.add_argument("--perplexities", type=arg_types.positive_float, nargs="*",
                        default=[5.0, 50.0],
                        help="extra perplexities drawn for comparison (none: skip that PNG)")
    args = parser.parse_args(argv)
    if args.perplexity >= args.n_samples:
        parser.error(f"--perplexity must be below the number of samples ({args.n_samples})")

    import matplotlib

    matplotlib.use("Agg")  # headless: draw to files, never open a window
    import matplotlib.pyplot as plt
    import torch
    from sklearn.manifold import TSNE

    from .digits_embeddings import digits_embeddings
    from .embedding_plots import save_figure, scatter_by_class

    # The models here are tiny: a second thread only adds synchronization overhead.
    torch.set_num_threads(1)

    start = time.perf_counter()
    emb = digits_embeddings(args.n_samples, args.hidden, args.epochs, args.seed)
    print(f"digits: {len(emb.labels)} samples; MLP held-out accuracy {emb.test_accuracy:.3f}")

    def tsne(features, perplexity):
        t0 = time.perf_counter()
        points = TSNE(n_components=2, perplexity=perplexity, init="pca",
                      random_state=args.seed).fit_transform(features)
        print(f"  t-SNE of {features.shape} at perplexity {perplexity:g}: "
              f"{time.perf_counter() - t0:.1f} s")
        return points

    layouts = {("raw pixels", args.perplexity): tsne(emb.raw, args.perplexity)}
    layouts["MLP hidden layer", args.perplexity] = tsne(emb.hidden, args.perplexity)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, name in zip(axes, ("raw pixels", "MLP hidden layer"), strict=True):
        scatter_by_class(ax, layouts[name, args.perplexity], emb.labels,
                         f"t-SNE of {name} (perplexity {args.perplexity:g})",
                         "t-SNE 1", "t-SNE 2")
    fig.suptitle("Digits embedded by t-SNE: nearby points are similar images")
    print("wrote", save_figure(fig, args.out_dir, "tsne_digits.png"))

    extra = [p for p in args.perplexities if p < len(emb.labels)]
    if extra:
        perplexities = sorted({*extra, args.perplexity})
        fig, axes = plt.subplots(1, len(perplexities), figsize=(5 * len(perplexities), 4.6))
        for ax, p in zip(axes, perplexities, strict=True):
            if ("raw pixels", p) not in layouts:  # reuse the run drawn above
                layouts["raw pixels", p] = tsne(emb.raw, p)
            scatter_by_class(ax, layouts["raw pixels", p], emb.labels, f"perplexity {p:g}",
                             "t-SNE 1", "t-SNE 2")
        fig.suptitle("t-SNE of raw pixels: perplexity sets how many neighbors count")
        print("wrote", save_figure(fig, args.out_dir, "tsne_perplexity.png"))
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
