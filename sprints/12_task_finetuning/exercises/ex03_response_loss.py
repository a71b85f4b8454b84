"""Exercise 3: the loss on response tokens only (results/instruct.py, response_loss)."""

import torch


def response_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits (B, T, V), targets (B, T) with -100 on prompt and padding positions. Return the
    mean over the positions whose target is not -100 of -log softmax(logits)[target], as a
    0-dim tensor. Write it with log_softmax and gather (F.cross_entropy is the check's
    reference)."""
    raise NotImplementedError("hint: keep = targets != -100; rows = logits[keep] is (N, V); "
                              "log_softmax, then gather the targets[keep] column")
