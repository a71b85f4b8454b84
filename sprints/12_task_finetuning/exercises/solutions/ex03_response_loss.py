"""Solution 3: select the response rows, normalise them, pick each row's target."""

import torch


def response_loss(logits, targets):
    keep = targets != -100  # (B, T)
    log_probs = torch.log_softmax(logits[keep], dim=-1)  # (N, V)
    return -log_probs.gather(1, targets[keep].unsqueeze(1)).mean()
