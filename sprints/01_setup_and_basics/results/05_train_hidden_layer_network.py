"""Train the one-hidden-layer network twice on load_digits: hand-written backward vs autograd.

Both versions start from the same weights and see the same mini-batches, so their loss
curves should lie on top of each other; the script prints how far apart they end up.
"""

import argparse
import time
from pathlib import Path

import torch

from .arg_types import positive_float, positive_int
from .digits_data import accuracy, load_digits_split
from .manual_mlp import ManualMLP, train_manual
from .torch_mlp import TorchMLP, train_torch


def plot_losses(manual: list[float], auto: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(manual) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, manual, "o-", label="raw tensors, hand-written backward")
    ax.plot(epochs, auto, "x--", label="nn.Module + autograd")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training cross-entropy")
    ax.set_yscale("log")
    ax.set_title("One hidden layer on load_digits: both versions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=positive_int, default=64, help="hidden units")
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--lr", type=positive_float, default=0.1, help="SGD learning rate")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed for init, split and batches")
    parser.add_argument("--out-dir", type=Path, default=None, help="write loss_curves.png here")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch CPU threads (1 suits these tiny layers)",
    )
    args = parser.parse_args(argv)

    # A (32, 64) @ (64, 64) product is too small to split between threads: a second thread
    # costs more in hand-offs than it computes, and on a busy machine it waits for a core.
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_digits_split(seed=args.seed)
    n_in, n_out = data.X_train.shape[1], 10
    print(f"load_digits: {len(data.X_train)} train / {len(data.X_test)} test, {n_in} pixels")

    gen = torch.Generator().manual_seed(args.seed)
    manual = ManualMLP(n_in, args.hidden, n_out, generator=gen)
    auto = TorchMLP(n_in, args.hidden, n_out).copy_from_manual(manual)

    # The first optimizer.step() of a process imports torch._dynamo (and sympy): seconds of
    # one-time work that is not training. Pay it up front so the timings compare the loops.
    t = time.perf_counter()
    p = torch.zeros(1, requires_grad=True)
    p.grad = torch.zeros(1)
    torch.optim.SGD([p], lr=0.1).step()
    print(
        f"one-time cost of the first optimizer.step() in this process: "
        f"{time.perf_counter() - t:.1f} s (not counted below)"
    )

    t0 = time.perf_counter()
    hist_m = train_manual(
        manual, data.X_train, data.y_train, args.epochs, args.lr, args.batch_size, args.seed
    )
    t1 = time.perf_counter()
    hist_a = train_torch(
        auto, data.X_train, data.y_train, args.epochs, args.lr, args.batch_size, args.seed
    )
    t2 = time.perf_counter()

    auto.eval()
    with torch.no_grad():  # evaluation needs no graph
        rows = [
            ("raw tensors + hand backward", manual.forward, hist_m, t1 - t0),
            ("nn.Module + autograd", auto, hist_a, t2 - t1),
        ]
        print(f"{'version':30s} {'final loss':>10s} {'train acc':>9s} {'test acc':>8s} {'sec':>5s}")
        for name, fwd, hist, sec in rows:
            tr = accuracy(fwd(data.X_train), data.y_train)
            te = accuracy(fwd(data.X_test), data.y_test)
            print(f"{name:30s} {hist[-1]:10.4f} {tr:9.2%} {te:8.2%} {sec:5.2f}")
        gap = max(
            (manual.W1 - auto.hidden.weight.T).abs().max().item(),
            (manual.W2 - auto.out.weight.T).abs().max().item(),
        )
    print(f"largest weight difference between the two after training: {gap:.2e}")
    print("(same start, same batches, same gradients: only float rounding separates them)")

    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        path = args.out_dir / "loss_curves.png"
        plot_losses(hist_m, hist_a, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
