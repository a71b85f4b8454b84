"""Where the GPT's position embeddings come from (imported from sprint 5, not copied).

GPT-2 learns one vector per position: ``nn.Embedding(block_size, n_embd)``, called ``wpe``.
Sprint 5's sinusoidal table is the parameter-free option, ``position_encoding="sinusoidal"``:
``SinusoidalPositionalEmbedding`` is a drop-in replacement for that ``nn.Embedding`` (same call
``wpe(positions)``, same output shape), so the model code is the same for both:

    pos = torch.arange(T)                  # (T,)  positions 0..T-1
    x = wte(idx) + wpe(pos)                # (B, T, C) + (T, C) broadcast over the batch

That sum is exactly what sprint 5's ``PositionalEncodingBatchFirst`` computes for positions
0..T-1 (a test checks it); looking positions up, rather than slicing ``PE[:T]``, lets sprint
10's KV cache look up ``wpe(torch.arange(past, past + T))`` for T new tokens after ``past``
cached ones.
"""

from __future__ import annotations

from importlib import import_module

from torch import nn

from .config import GPTConfig

_pe = import_module("sprints.05_embeddings_and_positional_encoding.results.positional_encoding")
_learned = import_module(
    "sprints.05_embeddings_and_positional_encoding.results.learned_positional_embedding"
)

SinusoidalPositionalEmbedding = _pe.SinusoidalPositionalEmbedding
PositionalEncodingBatchFirst = _pe.PositionalEncodingBatchFirst
sinusoidal_encoding = _pe.sinusoidal_encoding
LearnedPositionalEmbedding = _learned.LearnedPositionalEmbedding


def build_position_embedding(config: GPTConfig) -> nn.Module:
    """``wpe`` for ``config``: positions (T,) -> vectors (T, n_embd)."""
    if config.position_encoding == "learned":
        # GPT-2's choice: 1024 x 768 trainable numbers, initialized N(0, 0.02) by model.py.
        return nn.Embedding(config.block_size, config.n_embd)
    return SinusoidalPositionalEmbedding(config.block_size, config.n_embd)
