"""Atomic checkpoint files: a crash mid-write never leaves a half-written checkpoint."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def save_atomic(obj: dict, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then os.replace onto ``path``.

    os.replace is atomic on one file system, so readers see the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_atomic`; weights_only=True runs no pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first with train_mnist.py")
    return torch.load(path, map_location="cpu", weights_only=True)
