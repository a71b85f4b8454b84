"""Data augmentation with torchvision: originals beside randomly augmented copies, as a PNG.

    uv run python -m sprints.02_datasets_and_dataloaders.results.05_augmentation_grid

Each row is one real digit: the original first, then one column per augmentation
(RandomRotation, RandomAffine, RandomPerspective, ElasticTransform), and a last column with
two of them chained in one Compose (RandomAffine + ElasticTransform).
Augmentation is for training only; validation and test images get ToTensor + Normalize only.
"""

import argparse
from importlib import import_module
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision import transforms  # noqa: E402

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")


def augmentations() -> dict[str, transforms.Compose]:
    """Name -> transform; each works on a (1, 28, 28) tensor with background 0."""
    rotation = transforms.RandomRotation(15)
    affine = transforms.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=8)
    perspective = transforms.RandomPerspective(distortion_scale=0.3, p=1.0)
    elastic = transforms.ElasticTransform(alpha=30.0, sigma=4.0)
    return {
        "RandomRotation(15)": rotation,
        "RandomAffine": affine,
        "RandomPerspective": perspective,
        "ElasticTransform": elastic,
        # A column title names exactly what ran: the two transforms, in the order applied.
        "RandomAffine + ElasticTransform": transforms.Compose([affine, elastic]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    parser.add_argument("--out-dir", default="runs/sprint02", help="where the PNG goes")
    parser.add_argument("--num-digits", type=arg_types.positive_int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)  # torchvision's random transforms draw from torch's generator

    ds = mnist_data.load_mnist(args.data_dir, train=False, transform=transforms.ToTensor())
    if args.num_digits > len(ds):
        parser.error(f"--num-digits {args.num_digits} is more than the {len(ds)} digits in "
                     f"{args.data_dir}; use at most {len(ds)}")
    augs = augmentations()
    fig, axes = plt.subplots(args.num_digits, 1 + len(augs),
                             figsize=(1.6 * (1 + len(augs)), 1.6 * args.num_digits))
    axes = axes.reshape(args.num_digits, 1 + len(augs))
    for row in range(args.num_digits):
        image, label = ds[row]
        columns = [("original", image)] + [(name, t(image)) for name, t in augs.items()]
        for col, (name, shown) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(shown[0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name.replace(" + ", " +\n"), fontsize=7)  # fits the column
            if col == 0:
                ax.set_ylabel(f"label {label}")
    fig.suptitle("MNIST originals (left) beside augmented copies")
    fig.tight_layout()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "augmentation_grid.png", dpi=100)
    print("augmentations:", ", ".join(augs))
    print(f"wrote {out / 'augmentation_grid.png'} ({args.num_digits} digits x {1 + len(augs)})")


if __name__ == "__main__":
    try:
        main()
    except mnist_data.MissingMNISTError as err:
        raise SystemExit(f"error: {err}") from None
