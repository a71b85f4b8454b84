"""Solution 3: weight tying is one assignment of a Parameter."""

from torch import nn


def tied_lm_head(embedding: nn.Embedding) -> nn.Linear:
    vocab_size, n_embd = embedding.weight.shape
    head = nn.Linear(n_embd, vocab_size, bias=False)
    head.weight = embedding.weight  # the same Parameter: gradients from both uses add up
    return head
