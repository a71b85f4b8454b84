"""Checks for the sprint 10 exercises; references: sorting loops in plain Python, torch.cat,
F.linear with a merged weight."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from sprints.check import expect_close, expect_equal, expect_raises


def _keep_mask(rows, keep_row):
    return torch.tensor([keep_row(row) for row in rows.tolist()])


def _brute_top_k(row, k):
    best = sorted(range(len(row)), key=lambda i: -row[i])[:k]
    return [i in best for i in range(len(row))]


def _brute_top_p(row, p):
    weights = [math.exp(v - max(row)) for v in row]
    probs = [w / sum(weights) for w in weights]
    kept, mass = set(), 0.0
    for i in sorted(range(len(row)), key=lambda i: -probs[i]):
        kept.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return [i in kept for i in range(len(row))]


def _expected(logits, keep):
    return logits.masked_fill(~keep, float("-inf"))


def check_ex01_top_k_filter(m):
    logits = torch.randn(3, 10, dtype=torch.float64) * 2
    for k in [1, 3, 10]:
        keep = _keep_mask(logits, lambda row, k=k: _brute_top_k(row, k))
        expect_close(f"top_k_filter(logits of shape (3, 10), k={k})",
                     m.top_k_filter(logits, k), _expected(logits, keep))


def check_ex02_top_p_filter(m):
    logits = torch.randn(4, 12, dtype=torch.float64) * 2
    for p in [0.01, 0.5, 0.9, 0.999]:
        keep = _keep_mask(logits, lambda row, p=p: _brute_top_p(row, p))
        expect_close(f"top_p_filter(logits of shape (4, 12), p={p})",
                     m.top_p_filter(logits, p), _expected(logits, keep))


def check_ex03_kv_cache(m):
    cache = m.KVCache(batch_size=2, n_head=3, max_len=6, head_dim=4)
    ks, vs = [], []
    for step, t_new in enumerate([3, 1, 2]):
        k, v = torch.randn(2, 3, t_new, 4), torch.randn(2, 3, t_new, 4)
        ks.append(k)
        vs.append(v)
        got_k, got_v = cache.update(k, v)
        call = f"update number {step + 1} (chunks of {[x.size(2) for x in ks]} positions)"
        expect_close(f"keys returned by {call}", got_k, torch.cat(ks, dim=2), atol=0)
        expect_close(f"values returned by {call}", got_v, torch.cat(vs, dim=2), atol=0)
        expect_equal(f"cache.length after {call}", cache.length, sum(x.size(2) for x in ks))
    k = torch.randn(2, 3, 1, 4)
    expect_raises("update of 1 more position into a full cache (max_len 6)", ValueError,
                  cache.update, k, k)


def check_ex04_lora(m):
    base = nn.Linear(6, 5)
    layer = m.LoRALinear(base, r=2, alpha=4.0)
    x = torch.randn(3, 6)
    with torch.no_grad():
        expect_close("LoRALinear(base, r=2, alpha=4)(x) at initialization (B = 0) against "
                     "base(x)", layer(x), base(x))
        layer.lora_b.copy_(torch.randn(5, 2))
        delta = (4.0 / 2) * torch.einsum("or,ri->oi", layer.lora_b, layer.lora_a)
        expected = F.linear(x, base.weight + delta, base.bias)
        expect_close("LoRALinear(...)(x) with random A and B against F.linear with "
                     "W + (alpha/r) B A", layer(x), expected)
        expect_close("LoRALinear(...).merged_weight()", layer.merged_weight(),
                     base.weight + delta)


CHECKS = [check_ex01_top_k_filter, check_ex02_top_p_filter, check_ex03_kv_cache,
          check_ex04_lora]
