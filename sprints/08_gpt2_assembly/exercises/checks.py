"""Checks for the sprint 8 exercises; references: models built from torch modules, closed forms."""

import torch
from torch import nn

from sprints.check import expect_close, expect_equal


def _brute_force_gpt2(vocab_size, block_size, c, n_layer, tied):
    parts = [nn.Embedding(vocab_size, c), nn.Embedding(block_size, c), nn.LayerNorm(c)]
    for _ in range(n_layer):
        parts += [nn.LayerNorm(c), nn.Linear(c, 3 * c), nn.Linear(c, c), nn.LayerNorm(c),
                  nn.Linear(c, 4 * c), nn.Linear(4 * c, c)]
    if not tied:
        parts.append(nn.Linear(c, vocab_size, bias=False))
    return sum(p.numel() for p in nn.ModuleList(parts).parameters())


def check_ex01_param_count(m):
    for args in [(10, 4, 8, 1, True), (65, 32, 48, 3, True), (65, 32, 48, 3, False),
                 (1000, 64, 64, 2, False)]:
        expect_equal(f"gpt2_param_count(vocab_size={args[0]}, block_size={args[1]}, "
                     f"n_embd={args[2]}, n_layer={args[3]}, tied={args[4]})",
                     m.gpt2_param_count(*args), _brute_force_gpt2(*args))


def check_ex02_conv1d_to_linear(m):
    n_in, n_out = 6, 10
    weight, bias, x = torch.randn(n_in, n_out), torch.randn(n_out), torch.randn(3, n_in)
    linear = m.conv1d_to_linear(weight, bias)
    expect_equal("conv1d_to_linear(weight (6, 10), bias (10,)).weight.shape",
                 tuple(linear.weight.shape), (n_out, n_in))
    with torch.no_grad():
        expect_close("conv1d_to_linear(weight (6, 10), bias)(x) against x @ weight + bias",
                     linear(x), x @ weight + bias)


def check_ex03_tied_head(m):
    embedding = nn.Embedding(11, 4)
    head = m.tied_lm_head(embedding)
    expect_equal("tied_lm_head(emb).weight is emb.weight (the same Parameter)",
                 head.weight is embedding.weight, True)
    expect_equal("tied_lm_head(emb).bias is None", head.bias is None, True)
    h = torch.randn(2, 4)
    expect_close("tied_lm_head(emb)(h) against h @ emb.weight.T", head(h),
                 h @ embedding.weight.T)


CHECKS = [check_ex01_param_count, check_ex02_conv1d_to_linear, check_ex03_tied_head]
