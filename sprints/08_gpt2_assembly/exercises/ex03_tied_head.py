"""Exercise 3: an output head that shares the token embedding (notes/03_weight_tying.md)."""

from torch import nn


def tied_lm_head(embedding: nn.Embedding) -> nn.Linear:
    """An nn.Linear(C, V, bias=False) whose weight IS the embedding's weight (one Parameter)."""
    raise NotImplementedError("hint: make the Linear, then assign head.weight = embedding.weight")
