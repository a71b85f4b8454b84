"""Solution 2: softmax cross-entropy backward."""

import torch


def softmax_cross_entropy_backward(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    shifted = logits - logits.max(dim=1, keepdim=True).values  # no overflow in exp
    probs = shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)  # (N, K)
    probs[torch.arange(len(targets)), targets] -= 1.0  # minus the one-hot target
    return probs / len(targets)
