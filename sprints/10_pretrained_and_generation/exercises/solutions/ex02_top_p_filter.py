"""Solution 2: top-p through a sort and an exclusive cumulative sum."""

import torch


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    keep_sorted = torch.cumsum(probs, dim=-1) - probs < p  # the first token: 0 < p, always kept
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to vocab order
    return logits.masked_fill(~keep, float("-inf"))
