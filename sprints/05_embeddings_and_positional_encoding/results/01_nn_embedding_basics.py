"""nn.Embedding is a lookup table, and a lookup equals a one-hot vector times the table.

Prints a tiny table, looks token ids up, rebuilds the same rows with one_hot(ids) @ weight,
shows the shapes for a batch of sequences, and what padding_idx does.

    uv run python -m sprints.05_embeddings_and_positional_encoding.results.01_nn_embedding_basics
"""

from __future__ import annotations

import argparse
from importlib import import_module

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-size", type=arg_types.positive_int, default=5)
    parser.add_argument("--dim", type=arg_types.positive_int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(args.seed)
    torch.set_printoptions(precision=4, sci_mode=False)
    emb = nn.Embedding(args.vocab_size, args.dim)  # weight (V, D), entries from N(0, 1)
    print(f"nn.Embedding({args.vocab_size}, {args.dim}).weight, one row per token id:")
    print(emb.weight.data)

    ids = torch.tensor([2, 0, 2]) % args.vocab_size  # (3,) token 2 appears twice
    looked_up = emb(ids)  # (3,) -> (3, D)
    print(f"\nids = {ids.tolist()}  ->  emb(ids), shape {tuple(looked_up.shape)}:")
    print(looked_up.data)

    one_hot = F.one_hot(ids, args.vocab_size).float()  # (3, V): a single 1 per row
    by_matmul = one_hot @ emb.weight  # (3, V) @ (V, D) -> (3, D): picks row ids[i]
    print("\none_hot(ids):")
    print(one_hot)
    print("one_hot(ids) @ weight:")
    print(by_matmul.data)
    same = torch.equal(looked_up, by_matmul)
    print(f"lookup == one-hot matmul: {same} (exactly: each output is 1 * row + 0 * others)")

    batch = torch.randint(0, args.vocab_size, (2, 4))  # (B, T) token ids
    print(f"\na batch of ids (B, T) = {tuple(batch.shape)} -> emb(batch) (B, T, D) = "
          f"{tuple(emb(batch).shape)}")
    print(f"the one-hot route would build a {tuple(batch.shape)} x {args.vocab_size} matrix "
          "first; with GPT-2's 50257 tokens that is why real code indexes instead")

    # Gradient: only the rows that were looked up receive gradient.
    emb.zero_grad()
    emb(ids).sum().backward()
    print("\nafter emb(ids).sum().backward(), weight.grad (row 2 used twice gets 2s):")
    print(emb.weight.grad)

    pad = nn.Embedding(args.vocab_size, args.dim, padding_idx=0)
    print("\nnn.Embedding(..., padding_idx=0): row 0 is zeros and never trained:")
    print(pad.weight.data[0], "->", pad(torch.tensor([0])).data)


if __name__ == "__main__":
    main()
