"""torchvision's MNIST with Compose / ToTensor / Normalize, using a mean and std computed here.

    uv run python -m sprints.02_datasets_and_dataloaders.results.03_mnist_mean_std

Step 1: ToTensor only, stream every image once and compute the pixel mean and std.
Step 2: Compose([ToTensor(), Normalize(mean, std)]) with exactly those numbers; the
normalised pixels then have mean 0 and std 1, which the script checks.
"""

import argparse
from importlib import import_module

from torch.utils.data import DataLoader
from torchvision import transforms

mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")


def dataset_mean_std(data_dir: str, train: bool, batch_size: int = 1000) -> tuple[float, float]:
    """Pixel mean and std of one MNIST split, as ToTensor sees it (values in [0, 1])."""
    ds = mnist_data.load_mnist(data_dir, train=train, transform=transforms.ToTensor())
    return mnist_data.pixel_mean_std(DataLoader(ds, batch_size=batch_size))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    parser.add_argument("--split", choices=["train", "test"], default="test",
                        help="which file to measure (default test: it is the one shipped here)")
    args = parser.parse_args(argv)
    train = args.split == "train"

    mean, std = dataset_mean_std(args.data_dir, train)
    print(f"MNIST {args.split}: pixel mean {mean:.4f}, std {std:.4f}  (after ToTensor, in [0, 1])")

    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    ds = mnist_data.load_mnist(args.data_dir, train=train, transform=pipeline)
    image, label = ds[0]
    print(f"ds[0] after Compose: {tuple(image.shape)} {image.dtype}, label {label}, "
          f"min {image.min():.3f} (the background: -mean/std = {-mean / std:.3f}), "
          f"max {image.max():.3f}")
    m2, s2 = mnist_data.pixel_mean_std(DataLoader(ds, batch_size=1000))
    print(f"normalised split: mean {m2:+.2e}, std {s2:.4f}  (should be 0 and 1)")


if __name__ == "__main__":
    try:
        main()
    except mnist_data.MissingMNISTError as err:
        raise SystemExit(f"error: {err}") from None
