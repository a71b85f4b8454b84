"""DataLoader: batching, shuffling, drop_last and reproducible order, on real MNIST.

    uv run python -m sprints.02_datasets_and_dataloaders.results.02_dataloader_basics
"""

import argparse
from importlib import import_module

import torch
from torch.utils.data import DataLoader, Subset

idx = import_module("sprints.02_datasets_and_dataloaders.results.idx_dataset")
arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")


def first_labels(loader: DataLoader, n: int = 8) -> list[int]:
    _, labels = next(iter(loader))  # a fresh iterator = a fresh epoch (and a fresh shuffle)
    return labels[:n].tolist()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    parser.add_argument("--batch-size", type=arg_types.positive_int, default=64)
    parser.add_argument("--num-digits", type=arg_types.positive_int, default=1000,
                        help="size of the subset used")
    args = parser.parse_args(argv)

    raw = mnist_data.ensure_mnist_files(args.data_dir, train=False)
    full = idx.IdxDigits(idx.find_idx(raw, "t10k-images-idx3-ubyte"),
                         idx.find_idx(raw, "t10k-labels-idx1-ubyte"))
    ds = Subset(full, range(min(args.num_digits, len(full))))

    loader = DataLoader(ds, batch_size=args.batch_size)
    images, labels = next(iter(loader))
    # default_collate stacks the per-item tensors: B items of (1, 28, 28) -> (B, 1, 28, 28)
    print(f"one batch: images {tuple(images.shape)}, labels {tuple(labels.shape)} {labels.dtype}")
    sizes = [len(y) for _, y in loader]
    print(f"{len(ds)} digits / batch {args.batch_size} -> {len(loader)} batches, "
          f"last one has {sizes[-1]} (drop_last=False keeps it)")
    dropped = DataLoader(ds, batch_size=args.batch_size, drop_last=True)
    print(f"drop_last=True -> {len(dropped)} batches, all of {args.batch_size}")

    print("shuffle=False, first labels of two epochs:", first_labels(loader), first_labels(loader))
    shuffled = DataLoader(ds, batch_size=args.batch_size, shuffle=True)
    print("shuffle=True,  first labels of two epochs:",
          first_labels(shuffled), first_labels(shuffled))
    a = DataLoader(ds, batch_size=args.batch_size, shuffle=True,
                   generator=torch.Generator().manual_seed(0))
    b = DataLoader(ds, batch_size=args.batch_size, shuffle=True,
                   generator=torch.Generator().manual_seed(0))
    print("two loaders with generator seed 0 give the same order:",
          first_labels(a) == first_labels(b))
    seen = torch.cat([y for _, y in shuffled])
    print("one shuffled epoch still visits every digit exactly once:",
          sorted(seen.tolist()) == sorted(int(full.labels[i]) for i in range(len(ds))))


if __name__ == "__main__":
    try:
        main()
    except mnist_data.MissingMNISTError as err:
        raise SystemExit(f"error: {err}") from None
