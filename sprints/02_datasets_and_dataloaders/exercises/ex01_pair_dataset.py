"""Exercise 1: a map-style Dataset (notes/01_dataset_and_dataloader.md)."""

import torch
from torch.utils.data import Dataset


class PairDataset(Dataset):
    """Sample i is (inputs[i], targets[i]); negative indices count from the end, as for a list."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        raise NotImplementedError("hint: the number of samples")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("hint: return a tuple of one row of each tensor")
