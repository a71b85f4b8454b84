"""Train a linear regression with nn.MSELoss and Adam: the full training loop, a tqdm bar,
an evaluation loop under model.eval() + torch.no_grad(), and the validation loss per epoch.

    uv run python -m sprints.03_models_and_training_loops.results.01_train_linear_regression

Prints the learned weights beside the true ones and draws train/validation loss curves.
"""

import argparse
from importlib import import_module
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
lr_mod = import_module("sprints.03_models_and_training_loops.results.linear_regression")
loops = import_module("sprints.03_models_and_training_loops.results.training_loop")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=arg_types.positive_int, default=30)
    parser.add_argument("--lr", type=arg_types.positive_float, default=0.05)
    parser.add_argument("--batch-size", type=arg_types.positive_int, default=64)
    parser.add_argument("--noise-std", type=arg_types.non_negative_float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="runs/sprint03", help="where the loss curve goes")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    true_w, true_b = torch.tensor([2.0, -3.4, 0.5]), 4.2
    train_ds = lr_mod.make_synthetic(1000, true_w, true_b, args.noise_std, seed=args.seed)
    val_ds = lr_mod.make_synthetic(200, true_w, true_b, args.noise_std, seed=args.seed + 1)
    train_loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=256)

    model = lr_mod.LinearRegression(len(true_w))
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = {"train": [], "val": []}
    for _ in (bar := tqdm(range(args.epochs), desc="epochs")):
        train = loops.train_one_epoch(model, train_loader, loss_fn, optimizer, progress=False)
        val = loops.evaluate(model, val_loader, loss_fn)  # model.eval() + torch.no_grad() inside
        history["train"].append(train["loss"])
        history["val"].append(val["loss"])
        bar.set_postfix(train=f"{train['loss']:.4f}", val=f"{val['loss']:.4f}")

    w = model.linear.weight.detach().squeeze(0)
    b = model.linear.bias.item()
    print(f"true   w {[round(v, 3) for v in true_w.tolist()]}  b {true_b:.3f}")
    print(f"learnt w {[round(v, 3) for v in w.tolist()]}  b {b:.3f}")
    print(f"final train MSE {history['train'][-1]:.5f}, validation MSE {history['val'][-1]:.5f} "
          f"(the noise alone gives {args.noise_std ** 2:.5f})")

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, args.epochs + 1)
    ax.plot(epochs, history["train"], label="train MSE (mean over the epoch)")
    ax.plot(epochs, history["val"], label="validation MSE (after the epoch)")
    if args.noise_std > 0:  # a log axis cannot show a floor of 0
        ax.axhline(args.noise_std**2, color="gray", ls="--", label="noise variance")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE")
    ax.set_title("Linear regression with Adam")
    ax.legend()
    fig.tight_layout()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "linear_regression_loss.png", dpi=100)
    print(f"wrote {out / 'linear_regression_loss.png'}")


if __name__ == "__main__":
    main()
