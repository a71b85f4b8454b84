"""argparse types for numeric options: bad values stop at parse time with a usage message.

    parser.add_argument("--epochs", type=positive_int, default=30)
    $ ... --epochs 0
    error: argument --epochs: must be a whole number of at least 1; got 0

argparse calls ``type`` on the text of each option and, when it raises
``ArgumentTypeError``, prints the usage line, names the flag and exits with status 2, before
the script has read data or created a folder. Sprints 2 to 7 import this module too;
it imports no torch, so a parser built from it answers ``--help`` at once.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}; got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, sizes, batch sizes, counts)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1; got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (options where 0 means "off" or "all", worker counts, seeds)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0; got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0; got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (noise levels, weight decay)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more; got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a share of a data set that must leave some of both)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1; got {text}")
    return value


def half_open_fraction(text: str) -> float:
    """A number in [0, 1) (label smoothing: 0 is off, 1 would erase the labels)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1; got {text}")
    return value
