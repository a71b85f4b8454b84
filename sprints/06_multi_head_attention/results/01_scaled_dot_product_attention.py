"""Scaled dot-product attention step by step on tensors small enough to read.

Prints Q K^T, the scaling, the softmax weights and the output for 3 tokens with d_k = 2,
then checks the from-scratch function against torch.nn.functional.scaled_dot_product_attention
on random batched tensors.

    uv run python -m sprints.06_multi_head_attention.results.01_scaled_dot_product_attention
"""

import argparse
import math
from importlib import import_module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed for the random check")
    args = parser.parse_args(argv)

    # Imported after parsing, so that --help answers without loading torch.
    import torch
    import torch.nn.functional as F

    sdpa = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")
    torch.set_printoptions(precision=4, sci_mode=False)

    # 3 tokens, d_k = 2. Token 0 and token 2 point the same way; token 1 is orthogonal.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    v = torch.tensor([[10.0, 0.0], [0.0, 10.0], [5.0, 5.0]])
    print("Q =\n", q, "\nK =\n", k, "\nV =\n", v)

    scores = q @ k.T
    print("\n1) scores = Q @ K^T  (row i = query i, column j = key j)\n", scores)
    scaled = scores / math.sqrt(q.size(-1))
    print(
        f"\n2) scaled by 1/sqrt(d_k) = 1/sqrt({q.size(-1)}) = {1 / math.sqrt(q.size(-1)):.4f}\n",
        scaled,
    )
    weights = torch.softmax(scaled, dim=-1)
    print("\n3) weights = softmax over each row (rows sum to 1)\n", weights)
    print("   row sums:", weights.sum(-1))
    print("\n4) output = weights @ V (each row a weighted average of V's rows)\n", weights @ v)

    out, w = sdpa.scaled_dot_product_attention(q, k, v)
    print("\nscaled_dot_product_attention(q, k, v) gives the same output:\n", out)
    assert torch.allclose(w, weights) and torch.allclose(out, weights @ v)

    # Why scale? Dot products of random d-dim vectors have variance d, so without the
    # 1/sqrt(d) the softmax saturates (one weight ~1, the rest ~0) as d grows.
    g = torch.Generator().manual_seed(args.seed)
    print("\nWhy 1/sqrt(d_k): largest softmax weight of a random row of 16 keys, mean of 256 rows")
    for d in (4, 64, 512):
        qq, kk = torch.randn(256, d, generator=g), torch.randn(16, d, generator=g)
        raw = torch.softmax(qq @ kk.T, -1).max(-1).values.mean()
        scaled_max = torch.softmax(qq @ kk.T / math.sqrt(d), -1).max(-1).values.mean()
        print(f"  d_k={d:4d}: unscaled {raw:.3f}   scaled {scaled_max:.3f}")

    qb, kb, vb = (torch.randn(2, 4, 5, 8, generator=g) for _ in range(3))  # (B, h, T, d)
    ours, _ = sdpa.scaled_dot_product_attention(qb, kb, vb)
    ref = F.scaled_dot_product_attention(qb, kb, vb)
    print(f"\nbatched (2, 4, 5, 8): max |ours - torch F.sdpa| = {(ours - ref).abs().max():.2e}")


if __name__ == "__main__":
    main()
