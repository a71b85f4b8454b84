"""A hand-written embedding layer next to nn.Embedding: same outputs, same gradients.

Copies nn.Embedding's weights into CustomEmbedding (custom_embedding.py), runs both on the
same ids, backpropagates the same loss, and prints which rows got gradient.

    uv run python -m sprints.05_embeddings_and_positional_encoding.results.02_custom_embedding
"""

from __future__ import annotations

import argparse
from importlib import import_module

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-size", type=arg_types.positive_int, default=6)
    parser.add_argument("--dim", type=arg_types.positive_int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from torch import nn

    from .custom_embedding import CustomEmbedding

    torch.manual_seed(args.seed)
    torch.set_printoptions(precision=4, sci_mode=False)
    ours = CustomEmbedding(args.vocab_size, args.dim)
    ref = nn.Embedding(args.vocab_size, args.dim)
    with torch.no_grad():
        ref.weight.copy_(ours.weight)  # same table, so any difference would be the lookup
    print(ours, "vs", ref)

    ids = torch.tensor([[1, 3, 3], [0, 1, 1]]) % args.vocab_size  # (B=2, T=3)
    out_ours, out_ref = ours(ids), ref(ids)  # (2, 3) -> (2, 3, D)
    print(f"ids {ids.tolist()} -> output shape {tuple(out_ours.shape)}")
    print(f"outputs equal: {torch.equal(out_ours, out_ref)}")

    # Any loss works; weighting positions differently makes the gradient rows distinct.
    weights = torch.arange(1.0, ids.numel() + 1).view_as(ids).unsqueeze(-1)  # (2, 3, 1)
    (out_ours * weights).sum().backward()
    (out_ref * weights).sum().backward()
    print(f"gradients equal: {torch.equal(ours.weight.grad, ref.weight.grad)}")
    print("weight.grad (row r = sum of the output gradients of every position that used r):")
    print(ours.weight.grad)
    used = sorted(set(ids.flatten().tolist()))
    zero_rows = [r for r in range(args.vocab_size) if not ours.weight.grad[r].any()]
    print(f"rows used: {used}; rows with zero gradient: {zero_rows}")

    try:
        ours(torch.tensor([args.vocab_size]))
    except IndexError as err:
        print(f"out-of-range id gives a clear error: {err}")


if __name__ == "__main__":
    main()
