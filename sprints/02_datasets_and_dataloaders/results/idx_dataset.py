"""A hand-written Dataset over MNIST's IDX files (no torchvision involved).

IDX format: a big-endian header of 4-byte integers, then raw uint8 values.
  magic = 0x00000803 for images (0x08 = unsigned byte, 0x03 = three dimensions)
          0x00000801 for labels (one dimension)
  then one int per dimension (N, then 28, 28 for images), then the data row by row.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


def read_idx(path: str | Path) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or .gz) into a numpy array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (its first two bytes must be zero)")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX (type 0x08) is read, got {dtype_code:#x}")
    # '>u4' = big-endian unsigned 32-bit: IDX headers are written most significant byte first
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def find_idx(raw_dir: str | Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` inside raw_dir, whichever exists."""
    for candidate in (Path(raw_dir) / stem, Path(raw_dir) / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"neither {stem} nor {stem}.gz in {raw_dir}")


class IdxDigits(Dataset):
    """Images and labels from two IDX files; item i is (image, label).

    Without a transform the image is a float tensor (1, 28, 28) scaled to [0, 1].
    """

    def __init__(self, images_file: str | Path, labels_file: str | Path,
                 transform: Callable | None = None) -> None:
        self.images = read_idx(images_file)  # (N, 28, 28) uint8, kept as is in memory
        self.labels = read_idx(labels_file)  # (N,) uint8
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.images[index].copy())  # copy: frombuffer is read-only
        if self.transform is not None:
            image = self.transform(image)
        else:
            image = image.unsqueeze(0).float() / 255  # (28, 28) -> (1, 28, 28)
        return image, int(self.labels[index])
