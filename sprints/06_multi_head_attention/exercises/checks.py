"""Checks for the sprint 6 exercises; references: brute-force loops and PyTorch's attention."""

import torch
import torch.nn.functional as F

from sprints.check import expect_close, expect_equal


def check_ex01_causal_mask(m):
    for t in [1, 2, 5]:
        expected = torch.tensor([[j <= i for j in range(t)] for i in range(t)])
        expect_equal(f"causal_mask({t})", m.causal_mask(t), expected)


def check_ex02_split_heads(m):
    for b, t, c, nh in [(1, 1, 4, 2), (2, 3, 12, 3), (2, 5, 8, 1)]:
        x = torch.randn(b, t, c)
        hs = c // nh
        expected = torch.empty(b, nh, t, hs)
        for i in range(b):
            for h in range(nh):
                for j in range(t):
                    expected[i, h, j] = x[i, j, h * hs:(h + 1) * hs]
        split = m.split_heads(x, nh)
        expect_equal(f"split_heads(x of shape ({b}, {t}, {c}), n_heads={nh})", split, expected)
        expect_equal(f"merge_heads(split_heads(x of shape ({b}, {t}, {c}), {nh}))",
                     m.merge_heads(expected), x)


def check_ex03_attention(m):
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 5)
    expect_close("attention(q (2, 3, 4, 8), k (2, 3, 6, 8), v (2, 3, 6, 5))",
                 m.attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    q, k, v = torch.randn(3, 5, 4), torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    expect_close("attention(q, k, v, causal mask) with shapes (3, 5, 4)",
                 m.attention(q, k, v, torch.ones(5, 5, dtype=torch.bool).tril()),
                 F.scaled_dot_product_attention(q, k, v, is_causal=True))
    pad = torch.tensor([True, True, True, False, False]).view(1, 1, 5)
    expect_close("attention(q, k, v, padding mask hiding the last two keys)",
                 m.attention(q, k, v, pad), F.scaled_dot_product_attention(q, k, v, pad))


def check_ex04_multi_head_attention(m):
    from torch import nn

    for b, t, c, nh, causal in [(1, 4, 8, 2, False), (2, 6, 12, 3, True)]:
        mha = nn.MultiheadAttention(c, nh, batch_first=True).eval()
        with torch.no_grad():
            for p in (mha.in_proj_bias, mha.out_proj.bias):
                p.copy_(torch.randn_like(p) * 0.1)  # PyTorch starts them at zero
            x = torch.randn(b, t, c)
            mask = nn.Transformer.generate_square_subsequent_mask(t) if causal else None
            expected = mha(x, x, x, attn_mask=mask, need_weights=False)[0]
            got = m.multi_head_attention(x, mha.in_proj_weight, mha.in_proj_bias,
                                         mha.out_proj.weight, mha.out_proj.bias, nh, causal)
        expect_close(f"multi_head_attention(x ({b}, {t}, {c}), n_heads={nh}, causal={causal}) "
                     "against nn.MultiheadAttention", got, expected)


CHECKS = [check_ex01_causal_mask, check_ex02_split_heads, check_ex03_attention,
          check_ex04_multi_head_attention]
