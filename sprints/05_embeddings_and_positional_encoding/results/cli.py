"""Sprint 5's command-line pieces: the even-size type, the digits count and the flags the
visualization scripts share. The generic numeric types (``positive_int``, ``positive_float``,
...) come from sprint 1's ``arg_types``; scripts import those from there.

Kept apart from the modules that use torch or scikit-learn so that ``--help`` answers at
once: building a parser imports only ``argparse`` (``arg_types`` imports no torch either).
"""

from __future__ import annotations

import argparse
from importlib import import_module

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")

N_DIGITS = 1797  # images in scikit-learn's bundled digits data set
MIN_DIGITS = 20  # fewer leaves too few held-out images to measure the MLP


def positive_even_int(text: str) -> int:
    """argparse type: an even integer >= 2 (sin/cos pairs need an even embedding size)."""
    value = arg_types.positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(
            f"must be even (sin/cos come in pairs); got {value}, try {value + 1}"
        )
    return value


def digits_count(text: str) -> int:
    """argparse type: how many of the digits images to use."""
    value = arg_types.positive_int(text)
    if not MIN_DIGITS <= value <= N_DIGITS:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_DIGITS} and {N_DIGITS} (the digits data set's size); "
            f"got {value}"
        )
    return value


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The flags every visualization script (PCA, t-SNE, UMAP) shares."""
    parser.add_argument("--out-dir", default="runs/sprint05", help="where the PNGs go")
    parser.add_argument("--n-samples", type=digits_count, default=None,
                        help=f"use a random subset of the {N_DIGITS} digits (default: all)")
    parser.add_argument("--hidden", type=arg_types.positive_int, default=32,
                        help="MLP hidden width")
    parser.add_argument("--epochs", type=arg_types.positive_int, default=200,
                        help="MLP full-batch steps")
    parser.add_argument("--seed", type=int, default=0)
