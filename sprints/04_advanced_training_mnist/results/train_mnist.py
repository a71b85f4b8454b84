"""Train the sprint-4 CNN on MNIST: train / validation / test, TensorBoard, cosine LR,
early stopping, best checkpoint and summary.json under --out-dir.

    uv run python -m sprints.04_advanced_training_mnist.results.train_mnist --out-dir runs/mnist

With only the 10,000-digit test set on disk, ``--split-test 8000`` trains (and validates) on
its first 8,000 digits and tests on the last 2,000.

``--device auto`` (the default) trains on an NVIDIA GPU if torch sees one, then on an Apple
GPU (MPS), else on the CPU; ``--device cuda`` or ``mps`` on a machine without that GPU stops
with a usage error that says what the machine has.

Each run logs to its own folder ``--out-dir/tensorboard/<date-time>``, so running again into
the same --out-dir adds a run that TensorBoard shows beside the earlier ones:
``uv run tensorboard --logdir runs/mnist/tensorboard``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from importlib import import_module
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter

from .augment import BatchRandomAffine
from .checkpoint import load_checkpoint, save_atomic
from .cnn import MnistCNN
from .early_stopping import EarlyStopping

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
devices = import_module("sprints.01_setup_and_basics.results.devices")
mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")
loops = import_module("sprints.03_models_and_training_loops.results.training_loop")


class SplitError(ValueError):
    """The options ask for a split the data cannot give (the message says which option)."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the docstring's layout and show every default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    p.add_argument("--epochs", type=arg_types.positive_int, default=15,
                   help="maximum number of epochs")
    p.add_argument("--out-dir", default="runs/mnist", help="TensorBoard logs, checkpoint, summary")
    p.add_argument("--seed", type=int, default=0, help="seeds init, split, order, augmentation")
    p.add_argument("--split-test", type=arg_types.non_negative_int, default=0, metavar="N",
                   help="use only the test file: first N digits to train/validate, the rest to "
                        "test (for a data dir that holds just t10k-*; 0 = official split)")
    p.add_argument("--val-fraction", type=arg_types.open_fraction, default=0.05,
                   help="share of the training digits held out for validation")
    p.add_argument("--batch-size", type=arg_types.positive_int, default=64,
                   help="training batch size")
    p.add_argument("--lr", type=arg_types.positive_float, default=3e-3,
                   help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=arg_types.non_negative_float, default=5e-4,
                   help="AdamW weight decay")
    p.add_argument("--label-smoothing", type=arg_types.half_open_fraction, default=0.1,
                   help="for the training loss")
    p.add_argument("--patience", type=arg_types.positive_int, default=4,
                   help="early-stopping patience in epochs")
    p.add_argument("--width", type=arg_types.positive_int, default=32,
                   help="channels of the first conv block")
    p.add_argument("--device", choices=devices.DEVICE_CHOICES, default="auto",
                   help="where to train: auto takes CUDA, then MPS, then the CPU")
    p.add_argument("--no-augment", action="store_true", help="train without random affine")
    p.add_argument("--limit-train", type=arg_types.non_negative_int, default=0,
                   help="use only this many training digits (quick runs; 0 = all)")
    p.add_argument("--no-download", action="store_true", help="never try to download MNIST")
    p.add_argument("--no-progress", action="store_true", help="hide tqdm bars")
    return p


def validate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module) -> dict[str, float]:
    """Validation loss/accuracy after each epoch (its own function so tests can script it)."""
    return loops.evaluate(model, loader, loss_fn)


def load_splits(args) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """uint8 images (N, 28, 28) and labels for train, val and test.

    Raises SplitError when the options ask for more digits than the files hold.
    """
    dl = not args.no_download
    if args.split_test:
        test_file = mnist_data.load_mnist(args.data_dir, train=False, download=dl)
        n = len(test_file)
        if not 0 < args.split_test < n:
            raise SplitError(f"--split-test must be between 1 and {n - 1} for the {n} digits of "
                             f"the test file (the rest is the test set); got {args.split_test}")
        pool = (test_file.data[: args.split_test], test_file.targets[: args.split_test])
        test = (test_file.data[args.split_test :], test_file.targets[args.split_test :])
    else:
        try:
            train_file = mnist_data.load_mnist(args.data_dir, train=True, download=dl)
        except mnist_data.MissingMNISTError as err:
            raise mnist_data.MissingMNISTError(
                f"{err}\n(With only the t10k-* test files, run with --split-test 8000.)"
            ) from err
        test_file = mnist_data.load_mnist(args.data_dir, train=False, download=dl)
        pool = (train_file.data, train_file.targets)
        test = (test_file.data, test_file.targets)
    # A seeded permutation decides which training digits become the validation set.
    order = torch.randperm(len(pool[1]), generator=torch.Generator().manual_seed(args.seed))
    n_val = round(args.val_fraction * len(order))
    if not 0 < n_val < len(order):
        raise SplitError(f"--val-fraction {args.val_fraction} of {len(order)} digits holds out "
                         f"{n_val} for validation; choose a fraction that leaves at least one "
                         f"digit for validation and one for training")
    val_idx, train_idx = order[:n_val], order[n_val:]
    if args.limit_train:
        train_idx = train_idx[: args.limit_train]
    if len(train_idx) < args.batch_size:  # drop_last=True would leave no batch at all
        raise SplitError(f"--batch-size {args.batch_size} is more than the {len(train_idx)} "
                         f"training digits left after validation and --limit-train; "
                         f"use a --batch-size of at most {len(train_idx)}")
    return {
        "train": (pool[0][train_idx], pool[1][train_idx]),
        "val": (pool[0][val_idx], pool[1][val_idx]),
        "test": test,
    }


def to_dataset(images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
    # ToTensor + Normalize done once for the whole split: (N, 28, 28) uint8 -> (N, 1, 28, 28)
    x = (images.unsqueeze(1).float() / 255 - mean) / std
    return TensorDataset(x, labels.long())


class DeviceLoader:
    """A DataLoader whose batches arrive on ``device`` (sprint 3's loops take them as they come).

    Only for CUDA are the batches put in pinned (page-locked) memory: from there the copy to
    the GPU can run while the GPU still computes (``non_blocking``); for the CPU or MPS
    pinning is wasted work.
    """

    def __init__(self, dataset: TensorDataset, device: torch.device, **loader_kwargs) -> None:
        self.device = device
        self.loader = DataLoader(dataset, pin_memory=device.type == "cuda", **loader_kwargs)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for inputs, targets in self.loader:
            yield (inputs.to(self.device, non_blocking=self.loader.pin_memory),
                   targets.to(self.device, non_blocking=self.loader.pin_memory))


def new_run_dir(root: Path) -> Path:
    """Create and return a fresh folder ``root/<date-time>`` (``-2``, ``-3``... if taken).

    One folder per run: TensorBoard treats each folder as a run, so a second run into the same
    --out-dir shows up as a second curve instead of mixing its points into the first one's.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        path = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)  # numeric options are checked here, by their argparse types
    try:
        device = devices.pick_device(args.device)  # a missing GPU is a usage error too
    except devices.DeviceError as err:
        parser.error(str(err))
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    try:
        splits = load_splits(args)  # first, so bad options or missing data write nothing
    except SplitError as err:
        parser.error(str(err))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Normalise with the statistics of the training digits we actually train on.
    mean, std = mnist_data.pixel_mean_std([splits["train"][0].float() / 255])
    print(f"train/val/test digits: {[len(s[1]) for s in splits.values()]}; "
          f"train pixel mean {mean:.4f}, std {std:.4f}; device {device}")
    data = {k: to_dataset(*v, mean, std) for k, v in splits.items()}
    # Data sit in memory as tensors, so worker processes would only add overhead (sprint 2).
    # The shuffling generator stays on the CPU, so the order is the same on every device.
    train_loader = DeviceLoader(data["train"], device, batch_size=args.batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(args.seed),
                                drop_last=True)
    val_loader = DeviceLoader(data["val"], device, batch_size=512)
    test_loader = DeviceLoader(data["test"], device, batch_size=512)

    model = MnistCNN(width=args.width).to(device)  # before the optimizer sees its parameters
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    eval_loss_fn = nn.CrossEntropyLoss()  # plain cross-entropy for val/test numbers
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    # Cosine decay from lr to ~0 over all planned steps, stepped once per batch.
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.epochs * len(train_loader)
    )
    augment = None
    if not args.no_augment:
        augment = BatchRandomAffine(fill=(0 - mean) / std,
                                    generator=torch.Generator().manual_seed(args.seed + 1))
    stopper = EarlyStopping(patience=args.patience)
    tb_dir = new_run_dir(out_dir / "tensorboard")
    print(f"TensorBoard events: {tb_dir}")
    writer = SummaryWriter(log_dir=str(tb_dir))
    ckpt_path = out_dir / "best_model.pt"

    epoch_times = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        lr_start = optimizer.param_groups[0]["lr"]
        train = loops.train_one_epoch(
            model, train_loader, loss_fn, optimizer, scheduler=scheduler, batch_transform=augment,
            desc=f"epoch {epoch}/{args.epochs}", progress=not args.no_progress,
        )
        val = validate(model, val_loader, eval_loss_fn)
        epoch_times.append(time.perf_counter() - t0)
        for name, value in (("loss/train", train["loss"]), ("loss/val", val["loss"]),
                            ("accuracy/train", train["accuracy"]),
                            ("accuracy/val", val["accuracy"]), ("lr", lr_start)):
            writer.add_scalar(name, value, epoch)
        stop = stopper.step(val["loss"], model)
        if stopper.improved:
            save_atomic({"model": model.state_dict(), "epoch": epoch, "val_loss": val["loss"],
                         "mean": mean, "std": std, "width": args.width}, ckpt_path)
        print(f"epoch {epoch:2d}  train loss {train['loss']:.4f} acc {train['accuracy']:.4f}  "
              f"val loss {val['loss']:.4f} acc {val['accuracy']:.4f}  lr {lr_start:.2e}  "
              f"{epoch_times[-1]:.1f}s{'  *best' if stopper.improved else ''}")
        if stop:
            print(f"early stop: no improvement for {args.patience} epochs; "
                  f"best epoch {stopper.best_epoch}")
            break

    # Test the best model, read back from its checkpoint exactly as a user would
    # (load_checkpoint maps the tensors to the CPU; load_state_dict copies them to the device).
    best = load_checkpoint(ckpt_path)
    model.load_state_dict(best["model"])
    test = loops.evaluate(model, test_loader, eval_loss_fn)
    writer.add_scalar("accuracy/test", test["accuracy"], best["epoch"])
    writer.add_scalar("loss/test", test["loss"], best["epoch"])
    writer.close()

    summary = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "best_val_loss": stopper.best_loss,
        "best_epoch": stopper.best_epoch,
        "epochs_run": len(epoch_times),
        "elapsed_s": time.perf_counter() - start,
        "seconds_per_epoch": sum(epoch_times) / len(epoch_times),
        "n_train": len(data["train"]), "n_val": len(data["val"]), "n_test": len(data["test"]),
        "normalize_mean": mean, "normalize_std": std,
        "tensorboard_dir": str(tb_dir),
        "device": str(device),
        "args": vars(args),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"test accuracy {test['accuracy']:.4f} ({len(data['test'])} digits), best val loss "
          f"{stopper.best_loss:.4f} at epoch {stopper.best_epoch}; wrote {out_dir}/summary.json, "
          f"{ckpt_path.name}, tensorboard/")
    return summary


if __name__ == "__main__":
    try:
        main()
    except mnist_data.MissingMNISTError as err:
        raise SystemExit(f"error: {err}") from None
