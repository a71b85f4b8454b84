"""Exercise 2: the gradient of softmax cross-entropy, by hand (notes/02d_hidden_layer_network.md).

No autograd here: write the formula, then let the check compare it with autograd.
"""

import torch


def softmax_cross_entropy_backward(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d loss / d logits for ``loss = mean over rows of -log softmax(logits)[row, target]``.

    logits: (N, K) floats; targets: (N,) class indices. Returns a (N, K) tensor.
    """
    raise NotImplementedError("hint: the gradient is (softmax(logits) - one_hot(targets)) / N")
