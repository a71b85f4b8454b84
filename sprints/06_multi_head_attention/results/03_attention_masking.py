"""Padding masks and causal (look-ahead) masks, with the weight matrices they produce.

Mask convention: boolean, True = may attend. Prints each mask and the resulting attention
weights for a tiny batch, including a causal mask with more keys than queries (KV cache)
and a query whose keys are all masked (weights and output 0, not NaN).

    uv run python -m sprints.06_multi_head_attention.results.03_attention_masking
"""

import argparse
from importlib import import_module

SDPA = "sprints.06_multi_head_attention.results.scaled_dot_product_attention"


def show(title, mask, q, k, v):
    sdpa = import_module(SDPA)  # imported on use, so that --help does not load torch
    out, w = sdpa.scaled_dot_product_attention(q, k, v, mask=mask)
    print(f"\n=== {title}")
    print("mask (1 = may attend):\n", mask.int())
    print("weights:\n", w)
    return out, w


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    sdpa = import_module(SDPA)
    torch.manual_seed(args.seed)
    torch.set_printoptions(precision=3, sci_mode=False)

    # All scores equal (q = k = 0) so the weights show the mask alone: 1 / (#allowed keys).
    T = 4
    q = torch.zeros(2, T, 2)
    k = torch.zeros(2, T, 2)
    v = torch.arange(2 * T * 1, dtype=torch.float32).view(2, T, 1)

    lengths = torch.tensor([4, 2])  # sequence 1 has 2 real tokens and 2 padding tokens
    pad = sdpa.padding_mask(lengths, T)  # (B, 1, 1, T)
    print("padding_mask(lengths=[4, 2], max_len=4) shape", tuple(pad.shape))
    show("padding mask: nobody attends to sequence 1's last two tokens", pad[:, 0], q, k, v)

    causal = sdpa.causal_mask(T)
    show("causal mask: token i sees tokens 0..i", causal, q[:1], k[:1], v[:1])

    both = causal & pad[:, 0]  # (T, T) & (B, 1, T) -> (B, T, T)
    show("causal AND padding (what a decoder uses on a padded batch)", both, q, k, v)

    # Random scores: masked positions still get exactly 0, the rest renormalize to sum 1.
    qr, kr = torch.randn(1, T, 2), torch.randn(1, T, 2)
    _, w = show("causal mask on random scores", causal, qr, kr, v[:1])
    print("row sums:", w.sum(-1))

    show(
        "causal_mask(2, 5): the last 2 of 5 positions as queries (KV cache)",
        sdpa.causal_mask(2, 5),
        torch.zeros(1, 2, 2),
        torch.zeros(1, 5, 2),
        torch.zeros(1, 5, 1),
    )

    empty = torch.tensor([[True, True, False], [False, False, False], [True, False, False]])
    out, w = show(
        "query 1 may attend nothing",
        empty,
        torch.zeros(1, 3, 2),
        torch.zeros(1, 3, 2),
        torch.ones(1, 3, 1),
    )
    naive = torch.softmax(torch.full((3,), float("-inf")), dim=-1)
    print(
        "a plain softmax of that row would be",
        naive,
        "-> we return weights 0, output",
        out[0, 1].tolist(),
    )


if __name__ == "__main__":
    main()
