"""A custom Dataset over the real MNIST files: __len__, __getitem__, and what an item is.

    uv run python -m sprints.02_datasets_and_dataloaders.results.01_custom_dataset
"""

import argparse
from importlib import import_module

import torch

idx = import_module("sprints.02_datasets_and_dataloaders.results.idx_dataset")
mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    parser.add_argument("--train", action="store_true", help="read train-* instead of t10k-*")
    args = parser.parse_args(argv)

    raw = mnist_data.ensure_mnist_files(args.data_dir, train=args.train)
    images_stem, labels_stem = mnist_data.SPLIT_FILES[args.train]
    ds = idx.IdxDigits(idx.find_idx(raw, images_stem), idx.find_idx(raw, labels_stem))

    print(f"len(ds) = {len(ds)}   (Dataset.__len__)")
    image, label = ds[0]  # Dataset.__getitem__(0)
    print(f"ds[0] -> image {tuple(image.shape)} {image.dtype}, range "
          f"[{image.min():.1f}, {image.max():.1f}], label {label}")
    print("digit 0 as ASCII art (# = ink above 0.5):")
    for row in image[0, ::2]:  # every second row keeps the picture square-ish in a terminal
        print("  " + "".join("#" if v > 0.5 else "." for v in row.tolist()))
    counts = torch.bincount(torch.from_numpy(ds.labels.astype("int64")), minlength=10)
    print("label counts 0..9:", counts.tolist())


if __name__ == "__main__":
    try:
        main()
    except mnist_data.MissingMNISTError as err:
        raise SystemExit(f"error: {err}") from None
