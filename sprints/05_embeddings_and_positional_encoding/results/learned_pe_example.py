"""Token + learned position embeddings on a task that cannot be solved without positions.

Task: given 8 random tokens, name the FIRST one. The model embeds each token, adds a
position vector (none, learned, or sinusoidal), runs a small MLP on every position, and
averages over positions. Without positions the average cannot tell which token came first
(it sees a bag of tokens) and stays near chance; with either kind of position vector the
model learns the task in a few seconds. Draws ``learned_pe_training.png`` (accuracy per
step for the three variants) and ``learned_pe_similarity.png`` (cosine similarity of the
learned position vectors after training).

    uv run python -m sprints.05_embeddings_and_positional_encoding.results.learned_pe_example
"""

from __future__ import annotations

import argparse
from importlib import import_module

from .cli import positive_even_int

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")


def build_model(kind: str, vocab_size: int, seq_len: int, d_model: int):
    """Embedding -> (+ positions) -> per-position MLP -> mean over T -> logits."""
    import torch
    from torch import nn

    from .learned_positional_embedding import LearnedPositionalEmbedding
    from .positional_encoding import PositionalEncoding

    positions = {
        "none": nn.Identity(),
        "learned": LearnedPositionalEmbedding(seq_len, d_model),
        "sinusoidal": PositionalEncoding(d_model, max_len=seq_len),
    }[kind]

    class BagModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab_size, d_model)
            self.pos = positions
            self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.ReLU(),
                                     nn.Linear(4 * d_model, d_model))
            self.head = nn.Linear(d_model, vocab_size)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.pos(self.tok(ids))  # (B, T) -> (B, T, C), plus a vector per position
            h = self.mlp(x).mean(dim=1)  # (B, T, C) -> (B, C): order is lost here...
            return self.head(h)  # ...unless the position vectors marked each token first

    return BagModel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="runs/sprint05", help="where the PNGs go")
    parser.add_argument("--vocab-size", type=arg_types.positive_int, default=16)
    parser.add_argument("--seq-len", type=arg_types.positive_int, default=8)
    parser.add_argument("--d-model", type=positive_even_int, default=32,
                        help="embedding size (even: the sinusoidal variant needs sin/cos pairs)")
    parser.add_argument("--steps", type=arg_types.positive_int, default=400)
    parser.add_argument("--batch-size", type=arg_types.positive_int, default=128)
    parser.add_argument("--lr", type=arg_types.positive_float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import time

    import matplotlib

    matplotlib.use("Agg")  # headless: draw to files, never open a window
    import matplotlib.pyplot as plt
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from .embedding_plots import save_figure

    # The models here are tiny: a second thread only adds synchronization overhead.
    torch.set_num_threads(1)

    def batch(generator):
        ids = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len),
                            generator=generator)  # (B, T)
        return ids, ids[:, 0]  # target: the first token

    curves, models = {}, {}
    start = time.perf_counter()
    for kind in ("none", "learned", "sinusoidal"):
        torch.manual_seed(args.seed)
        model = build_model(kind, args.vocab_size, args.seq_len, args.d_model)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        data = torch.Generator().manual_seed(args.seed)  # same batches for every variant
        accuracy = []
        model.train()
        for _ in tqdm(range(args.steps), desc=f"positions={kind}", leave=False):
            ids, target = batch(data)
            logits = model(ids)
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            accuracy.append((logits.argmax(1) == target).float().mean().item())
        model.eval()
        with torch.no_grad():
            ids, target = batch(torch.Generator().manual_seed(args.seed + 1))  # unseen batch
            test_acc = (model(ids).argmax(1) == target).float().mean().item()
        n_pos = sum(p.numel() for n, p in model.named_parameters() if n.startswith("pos."))
        print(f"positions={kind:10s} held-out accuracy {test_acc:.3f} "
              f"(chance {1 / args.vocab_size:.3f}); position parameters: {n_pos}")
        curves[kind], models[kind] = accuracy, model
    print(f"trained 3 models in {time.perf_counter() - start:.1f} s")

    fig, ax = plt.subplots(figsize=(7, 4))
    window = min(20, args.steps)  # moving average: one batch's accuracy is noisy
    for kind, acc in curves.items():
        smooth = torch.tensor(acc).unfold(0, window, 1).mean(1).numpy()
        ax.plot(range(window, len(acc) + 1), smooth, label=f"positions: {kind}")
    ax.axhline(1 / args.vocab_size, color="gray", linestyle=":", label="chance")
    ax.set_title(f"Task: name the first of {args.seq_len} tokens (bag-of-tokens model)")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"batch accuracy ({window}-step average)")
    ax.set_ylim(0, 1.02)
    ax.legend()
    print("wrote", save_figure(fig, args.out_dir, "learned_pe_training.png"))

    pos = models["learned"].pos.embedding.weight.detach()  # (T, C)
    pos = F.normalize(pos, dim=1)
    cosine = pos @ pos.T  # (T, T)
    print("cosine similarity of the learned position vectors (row i, column j):")
    for i, row in enumerate(cosine.tolist()):
        print(f"  {i:2d}: " + " ".join(f"{c:+.3f}" for c in row))
    fig, ax = plt.subplots(figsize=(5, 4.2))
    image = ax.imshow(cosine.numpy(), cmap="RdBu", vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_title("Learned position vectors after training")
    ax.set_xlabel("position j")
    ax.set_ylabel("position i")
    print("wrote", save_figure(fig, args.out_dir, "learned_pe_similarity.png"))


if __name__ == "__main__":
    main()
