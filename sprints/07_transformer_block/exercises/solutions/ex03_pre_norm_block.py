"""Solution 3: a pre-LN block; the residual stream x is never normalized itself."""

from collections.abc import Callable

import torch

Sublayer = Callable[[torch.Tensor], torch.Tensor]


def pre_norm_block(x: torch.Tensor, ln1: Sublayer, attn: Sublayer, ln2: Sublayer,
                   ffn: Sublayer) -> torch.Tensor:
    x = x + attn(ln1(x))
    return x + ffn(ln2(x))
