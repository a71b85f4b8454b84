"""Exercise 2: nucleus (top-p) filtering (notes/01_decoding_strategies.md)."""

import torch


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least p
    (always at least one token), set the others to -inf. Works on the last dim."""
    raise NotImplementedError(
        "hint: sort descending, softmax, cumsum; keep a token when the mass BEFORE it is < p")
