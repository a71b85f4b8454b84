"""Command-line helpers for the scripts: argparse types and shared flags, nothing heavy.

Kept apart from the modules that use torch or scikit-learn so that ``--help`` answers at
once: building a parser imports only ``argparse``.
"""

from __future__ import annotations

import argparse

N_DIGITS = 1797  # images in scikit-learn's bundled digits data set
MIN_DIGITS = 20  # fewer leaves too few held-out images to measure the MLP


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (1 or more); got {value}")
    return value


def positive_even_int(text: str) -> int:
    """argparse type: an even integer >= 2 (sin/cos pairs need an even embedding size)."""
    value = positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(
            f"must be even (sin/cos come in pairs); got {value}, try {value + 1}"
        )
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be greater than 0; got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be 0 or more; got {text}")
    return value


def digits_count(text: str) -> int:
    """argparse type: how many of the digits images to use."""
    value = positive_int(text)
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
    parser.add_argument("--hidden", type=positive_int, default=32, help="MLP hidden width")
    parser.add_argument("--epochs", type=positive_int, default=200,
                        help="MLP full-batch steps")
    parser.add_argument("--seed", type=int, default=0)
