"""Solution 3: ceil or floor of n / batch_size."""


def num_batches(n_samples: int, batch_size: int, drop_last: bool) -> int:
    full, rest = divmod(n_samples, batch_size)
    return full + (1 if rest and not drop_last else 0)
