"""Exercise 3: how many batches a DataLoader yields (notes/01_dataset_and_dataloader.md)."""


def num_batches(n_samples: int, batch_size: int, drop_last: bool) -> int:
    """len(DataLoader(dataset of n_samples, batch_size=batch_size, drop_last=drop_last))."""
    raise NotImplementedError("hint: floor division, plus one for a partial batch unless dropped")
