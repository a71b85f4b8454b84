"""Exercise 1: top-k filtering (notes/01_decoding_strategies.md)."""

import torch


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (last dim), set the others to -inf."""
    raise NotImplementedError("hint: torch.topk gives the k-th largest value of each row")
