"""Exercise 3: a pre-LayerNorm block from its parts (notes/05_decoder_block.md,
notes/02_residual_connections.md)."""

from collections.abc import Callable

import torch

Sublayer = Callable[[torch.Tensor], torch.Tensor]


def pre_norm_block(x: torch.Tensor, ln1: Sublayer, attn: Sublayer, ln2: Sublayer,
                   ffn: Sublayer) -> torch.Tensor:
    """One pre-LN transformer block: attention, then feed-forward, each with a residual."""
    raise NotImplementedError("hint: x = x + attn(ln1(x)); then the same with ln2 and ffn")
