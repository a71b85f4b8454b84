"""What DataLoader worker processes buy on this machine: num_workers 0 / 1 / 2, two epochs each.

    uv run python -m sprints.02_datasets_and_dataloaders.results.06_num_workers

Every digit goes through a per-item CPU transform (RandomAffine + ToTensor + Normalize), the
work that workers can take off the main process. For each setting the script times the first
epoch (includes starting the workers) and the second one; persistent_workers=True keeps the
workers alive between epochs, so only the first epoch pays their start-up.

The `if __name__ == "__main__":` guard at the bottom matters: on macOS and Windows workers
are started with "spawn", which imports this file again in every worker; without the guard
each worker would start the benchmark again instead of loading data.
"""

import argparse
import time
from importlib import import_module

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")


def time_epochs(ds, num_workers: int, persistent: bool, batch_size: int,
                epochs: int = 2) -> list[float]:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        persistent_workers=persistent and num_workers > 0,
                        # pin_memory only helps copies to a GPU; on a CPU-only run leave it off
                        pin_memory=torch.cuda.is_available())
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for _images, _labels in loader:  # the loop body is empty: we time loading only
            pass
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    parser.add_argument("--num-digits", type=arg_types.positive_int, default=3000)
    parser.add_argument("--batch-size", type=arg_types.positive_int, default=64)
    parser.add_argument("--workers", type=arg_types.non_negative_int, nargs="+", default=[0, 1, 2],
                        help="num_workers settings to time (0 = load in the main process)")
    args = parser.parse_args(argv)

    pipeline = transforms.Compose([
        transforms.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        transforms.ToTensor(),
        transforms.Normalize((0.1325,), (0.3105,)),  # test-split values from 03_mnist_mean_std
    ])
    full = mnist_data.load_mnist(args.data_dir, train=False, transform=pipeline)
    ds = Subset(full, range(min(args.num_digits, len(full))))
    print(f"{len(ds)} digits, batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
          f"CPU cores visible {len(__import__('os').sched_getaffinity(0))}")
    print(f"{'num_workers':>11} {'persistent':>10} {'epoch 1 s':>10} {'epoch 2 s':>10} "
          f"{'digits/s (ep 2)':>16}")
    for workers in args.workers:
        for persistent in ([False, True] if workers > 0 else [False]):
            t1, t2 = time_epochs(ds, workers, persistent, args.batch_size)
            print(f"{workers:>11} {str(persistent):>10} {t1:>10.2f} {t2:>10.2f} "
                  f"{len(ds) / t2:>16.0f}")


if __name__ == "__main__":
    try:
        main()
    except mnist_data.MissingMNISTError as err:
        raise SystemExit(f"error: {err}") from None
