"""Exercise 3: KVCache.update (notes/02_kv_cache.md)."""

import torch


class KVCache:
    """Preallocated keys and values of one layer, shape (B, n_head, max_len, head_dim)."""

    def __init__(self, batch_size: int, n_head: int, max_len: int, head_dim: int) -> None:
        self.k = torch.zeros(batch_size, n_head, max_len, head_dim)
        self.v = torch.zeros(batch_size, n_head, max_len, head_dim)
        self.max_len = max_len
        self.length = 0  # positions filled so far

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, n_head, T_new, head_dim) at positions [length, length + T_new),
        advance length, and return every key and value so far (B, n_head, length, head_dim).
        Raise ValueError (and store nothing) if they would not fit in max_len."""
        raise NotImplementedError(
            "hint: end = self.length + T_new; self.k[:, :, self.length:end] = k; then slice :end")
