"""Sinusoidal positional encoding: the table, adding it to token embeddings, and pictures.

Prints a tiny table next to the formula, adds PE to a batch of token embeddings with
PositionalEncoding, shows that SinusoidalPositionalEmbedding is a parameter-free
nn.Embedding, and checks that PE[pos + k] is a fixed rotation of PE[pos]. Draws:
- ``positional_encoding_heatmap.png``: the table, positions x dimensions;
- ``positional_encoding_curves.png``: a few dimensions as waves of different speed;
- ``positional_similarity.png``: PE[i] . PE[j] for every pair of positions.

    uv run python -m sprints.05_embeddings_and_positional_encoding.results.03_positional_encoding
"""

from __future__ import annotations

import argparse
from importlib import import_module

from .cli import positive_even_int

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")

MIN_LEN = 8  # the demo looks up positions 5..7 and shifts by 5, so it needs 8 positions


def rotation_for_offset(k: int, d_model: int):
    """Block-diagonal M_k (d_model, d_model) with PE[pos + k] = PE[pos] @ M_k for every pos."""
    import math

    import torch

    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    for i in range(d_model // 2):
        w = 1.0 / 10000 ** (2 * i / d_model)
        c, s = math.cos(w * k), math.sin(w * k)
        # Row vector [sin a, cos a] @ [[c, -s], [s, c]] = [sin(a + wk), cos(a + wk)].
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, -s], [s, c]])
    return m


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="runs/sprint05", help="where the PNGs go")
    parser.add_argument("--max-len", type=arg_types.positive_int, default=100,
                        help=f"positions drawn (at least {MIN_LEN})")
    parser.add_argument("--d-model", type=positive_even_int, default=64,
                        help="embedding size (even)")
    args = parser.parse_args(argv)
    if args.max_len < MIN_LEN:
        parser.error(f"--max-len must be at least {MIN_LEN} (the demo uses positions up to 7); "
                     f"got {args.max_len}")

    import math

    import matplotlib

    matplotlib.use("Agg")  # headless: draw to files, never open a window
    import matplotlib.pyplot as plt
    import torch
    from torch import nn

    from .embedding_plots import save_figure
    from .positional_encoding import (
        PositionalEncoding,
        SinusoidalPositionalEmbedding,
        sinusoidal_encoding,
    )

    torch.set_printoptions(precision=4, sci_mode=False)
    small = sinusoidal_encoding(4, 6)  # (max_len=4, d_model=6)
    print("PE for 4 positions, d_model 6 (columns: sin w0, cos w0, sin w1, cos w1, sin w2, cos w2")
    print("with w_i = 1 / 10000^(2i/6) = 1, 0.0464, 0.00215):")
    print(small)

    # Token embeddings + positions: the input of every Transformer.
    torch.manual_seed(0)
    tok = nn.Embedding(10, args.d_model)
    ids = torch.tensor([[3, 3, 3, 7], [1, 2, 3, 4]])  # (B=2, T=4)
    x = tok(ids)  # (2, 4) -> (2, 4, d_model)
    pe = PositionalEncoding(args.d_model, max_len=args.max_len)
    y = pe(x)  # (2, 4, d_model) + (4, d_model)
    print(f"\ntoken embeddings {tuple(x.shape)} + PE[:4] -> {tuple(y.shape)}")
    same_token = torch.dist(y[0, 0], y[0, 1]).item()
    print(f"token 3 at positions 0 and 1: identical before ({torch.equal(x[0, 0], x[0, 1])}), "
          f"distance {same_token:.3f} after adding positions")
    print(f"PositionalEncoding state_dict keys: {list(pe.state_dict())} "
          "(the table is a non-persistent buffer: recomputed, never saved)")

    spe = SinusoidalPositionalEmbedding(args.max_len, args.d_model)
    positions = torch.tensor([[5, 6, 7]])
    print(f"SinusoidalPositionalEmbedding: positions {tuple(positions.shape)} -> "
          f"{tuple(spe(positions).shape)}"
          f", equals table rows: {torch.equal(spe(positions), spe.weight[positions])}, "
          f"parameters: {sum(p.numel() for p in spe.parameters())}")

    table = sinusoidal_encoding(args.max_len, args.d_model).double()  # (L, d)
    k = 5
    err = (table[:-k] @ rotation_for_offset(k, args.d_model) - table[k:]).abs().max().item()
    print(f"PE[pos + {k}] == PE[pos] @ M_{k} for every pos: max error {err:.1e} "
          "(a fixed rotation per offset: relative positions are a linear function)")

    sim = table @ table.T  # (L, L); the diagonal is d_model / 2 since sin^2 + cos^2 = 1
    js = [j for j in (1, 5, 20) if j < args.max_len]
    print(f"PE[i] . PE[i] = {sim[0, 0]:.1f} = d_model / 2; PE[0] . PE[j] for j = "
          f"{', '.join(map(str, js))}: {', '.join(f'{sim[0, j]:.1f}' for j in js)} "
          "(falls as positions move apart)")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    image = ax.imshow(table.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax, label="PE value")
    ax.set_title(f"Sinusoidal positional encoding (d_model {args.d_model})")
    ax.set_xlabel("dimension (even = sin, odd = cos; frequency falls to the right)")
    ax.set_ylabel("position")
    print("wrote", save_figure(fig, args.out_dir, "positional_encoding_heatmap.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    # Dimension 0 stands in when d_model is too small for the others.
    for dim in [d for d in (4, 10, 16, 24) if d < args.d_model] or [0]:
        ax.plot(table[:, dim].numpy(), label=f"dim {dim} (sin, wavelength "
                    f"{2 * math.pi * 10000 ** (dim / args.d_model):.0f})")
    ax.set_title("Each sin dimension is a wave; higher dimensions turn slower")
    ax.set_xlabel("position")
    ax.set_ylabel("PE value")
    ax.legend(fontsize=7, loc="lower left")
    print("wrote", save_figure(fig, args.out_dir, "positional_encoding_curves.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    image = ax.imshow(sim.numpy(), cmap="viridis")
    fig.colorbar(image, ax=ax, label="dot product PE[i] . PE[j]")
    ax.set_title("Similarity between positions")
    ax.set_xlabel("position j")
    ax.set_ylabel("position i")
    print("wrote", save_figure(fig, args.out_dir, "positional_similarity.png"))


if __name__ == "__main__":
    main()
