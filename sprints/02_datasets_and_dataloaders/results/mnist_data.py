"""Load MNIST from torchvision's folder layout, offline first, and never hang.

The layout is torchvision's: ``DIR/MNIST/raw/train-images-idx3-ubyte[.gz]`` and friends.
Files already on disk are used as they are (gzip files are unpacked next to themselves);
only a split whose files are missing is downloaded, with a short socket timeout, and any
failure becomes a :class:`MissingMNISTError` that says where to put the files.

Sprint 4 imports this module with ``import_module``; nothing here is copied elsewhere.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torchvision.datasets import MNIST
from torchvision.datasets.utils import (
    check_integrity,
    download_and_extract_archive,
    extract_archive,
)

# File stems per split, in the order (images, labels).
SPLIT_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DOWNLOAD_TIMEOUT_S = 5.0


class MissingMNISTError(RuntimeError):
    """MNIST is not on disk and could not be downloaded."""


def raw_folder(data_dir: str | Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def _missing_message(data_dir: str | Path, train: bool, reason: str) -> str:
    raw = raw_folder(data_dir)
    wanted = "\n".join(f"  {raw / (stem + '.gz')}" for stem in SPLIT_FILES[train])
    return (
        f"MNIST {'training' if train else 'test'} files are missing and could not be "
        f"downloaded ({reason}).\nPut these files there (gzip or unpacked, from "
        f"{MNIST.mirrors[0]}):\n{wanted}\nor point --data-dir at the folder that holds MNIST/raw/."
    )


def ensure_mnist_files(
    data_dir: str | Path, train: bool, download: bool = True, timeout: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Make sure the unpacked IDX files of one split exist; return the raw folder.

    Raises MissingMNISTError (quickly: ``timeout`` seconds per attempt at most) when they
    are absent and cannot be fetched.
    """
    raw = raw_folder(data_dir)
    md5s = dict(MNIST.resources)
    for stem in SPLIT_FILES[train]:
        if check_integrity(str(raw / stem)):
            continue
        gz = raw / f"{stem}.gz"
        if gz.exists():  # offline copy in gzip form: unpack it, as torchvision's download would
            extract_archive(str(gz), str(raw))
            continue
        if not download:
            raise MissingMNISTError(_missing_message(data_dir, train, "download=False"))
        raw.mkdir(parents=True, exist_ok=True)
        errors = []
        # urllib waits forever by default when a network silently drops packets; a default
        # socket timeout makes every attempt give up after `timeout` seconds.
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            for mirror in MNIST.mirrors:
                try:
                    name = f"{stem}.gz"
                    download_and_extract_archive(
                        f"{mirror}{name}", str(raw), filename=name, md5=md5s[name]
                    )
                    break
                except Exception as err:  # URLError, timeout, md5 mismatch, HTTP errors...
                    errors.append(f"{mirror}: {type(err).__name__}: {err}")
        finally:
            socket.setdefaulttimeout(old_timeout)
        if not check_integrity(str(raw / stem)):
            raise MissingMNISTError(_missing_message(data_dir, train, "; ".join(errors)))
    return raw


class MNISTSplit(MNIST):
    """torchvision's MNIST reader that needs only the files of the split it reads.

    torchvision's own ``_check_exists`` insists on all four files, so a folder that holds only
    the test set (``t10k-*``) could not be read with ``train=False``; this fixes just that.
    """

    @property
    def raw_folder(self) -> str:  # keep torchvision's folder name, not the subclass name
        return os.path.join(self.root, "MNIST", "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, "MNIST", "processed")

    def _check_exists(self) -> bool:
        return all(
            check_integrity(os.path.join(self.raw_folder, stem)) for stem in SPLIT_FILES[self.train]
        )


def load_mnist(
    data_dir: str | Path,
    train: bool,
    transform: Callable | None = None,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> MNIST:
    """Return torchvision's MNIST dataset for one split (downloading only if needed)."""
    ensure_mnist_files(data_dir, train, download=download, timeout=timeout)
    return MNISTSplit(str(data_dir), train=train, transform=transform, download=False)


def pixel_mean_std(batches: Iterable) -> tuple[float, float]:
    """Mean and standard deviation over every pixel of every image, in one streaming pass.

    ``batches`` yields image tensors scaled to [0, 1], or ``(images, labels)`` pairs as a
    DataLoader does. Sums are kept in float64 so 47 million pixels add up without drift:
    std = sqrt(E[x^2] - E[x]^2).
    """
    total = total_sq = 0.0
    count = 0
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = images.to(torch.float64)
        total += x.sum().item()
        total_sq += (x * x).sum().item()
        count += x.numel()
    if count == 0:
        raise ValueError("pixel_mean_std got no images; is the dataset empty?")
    mean = total / count
    return mean, max(total_sq / count - mean * mean, 0.0) ** 0.5
