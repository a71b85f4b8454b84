"""A custom transform class: RecenterByMass, used inside a torchvision Compose.

    uv run python -m sprints.02_datasets_and_dataloaders.results.04_custom_transform

MNIST's makers centred every digit by its centre of mass in the 28x28 frame. After a random
shift (augmentation, or a user's own scanned digit) that no longer holds; RecenterByMass puts
it back. Any object with __call__(tensor) -> tensor can sit in a Compose; that is the whole
contract of a transform. The script shifts real digits off-centre, recentres them, prints the
centres of mass before and after, and draws originals / shifted / recentred as a PNG.
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


def center_of_mass(image: torch.Tensor) -> tuple[float, float]:
    """(row, col) of the intensity-weighted mean pixel position of a (..., H, W) image."""
    plane = image.reshape(-1, *image.shape[-2:]).sum(0).double()  # channels summed: (H, W)
    rows = torch.arange(plane.shape[0], dtype=torch.float64)
    cols = torch.arange(plane.shape[1], dtype=torch.float64)
    total = plane.sum()
    return float((plane.sum(1) * rows).sum() / total), float((plane.sum(0) * cols).sum() / total)


def shift_image(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the content dy rows down and dx columns right; what enters is zero (background)."""
    h, w = image.shape[-2:]
    out = torch.zeros_like(image)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


class RecenterByMass:
    """Shift an image (C, H, W), background 0, so its centre of mass lands on the centre pixel.

    The shift is rounded to whole pixels, so nothing gets blurred. Put it before Normalize:
    after Normalize the background is no longer 0 and would count as mass.
    """

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() < 2:
            raise ValueError(f"RecenterByMass needs a (..., H, W) tensor, got {tuple(image.shape)}")
        if image.min() < 0:
            raise ValueError("RecenterByMass needs a background of 0: use it before Normalize")
        if image.sum() == 0:
            return image.clone()  # a blank image has no centre of mass
        r, c = center_of_mass(image)
        h, w = image.shape[-2:]
        return shift_image(image, round((h - 1) / 2 - r), round((w - 1) / 2 - c))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    parser.add_argument("--out-dir", default="runs/sprint02", help="where the PNG goes")
    parser.add_argument("--num-digits", type=arg_types.positive_int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    ds = mnist_data.load_mnist(args.data_dir, train=False, transform=transforms.ToTensor())
    if args.num_digits > len(ds):
        parser.error(f"--num-digits {args.num_digits} is more than the {len(ds)} digits in "
                     f"{args.data_dir}; use at most {len(ds)}")
    shift = transforms.RandomAffine(degrees=0, translate=(0.2, 0.2))  # up to 5.6 px each way
    recenter = RecenterByMass()
    pipeline = transforms.Compose([shift, recenter])  # a custom transform composes like any other
    print("pipeline:", pipeline)
    rows = []
    for i in range(args.num_digits):
        original, label = ds[i]
        shifted = shift(original)
        recentred = recenter(shifted)
        rows.append((original, shifted, recentred))
        coms = ["({:.1f}, {:.1f})".format(*center_of_mass(x)) for x in rows[-1]]
        print(f"digit {label}: centre of mass original {coms[0]}  shifted {coms[1]}  "
              f"recentred {coms[2]};  frame centre (13.5, 13.5)")
    print("one image through the Compose:", tuple(pipeline(ds[0][0]).shape))

    # squeeze=False: axes stays a (3, n) grid even for a single digit
    fig, axes = plt.subplots(3, len(rows), figsize=(1.3 * len(rows), 4.4), squeeze=False)
    titles = ["original", "shifted", "recentred"]
    for col, images in enumerate(rows):
        for row, image in enumerate(images):
            ax = axes[row, col]
            ax.imshow(image[0].numpy(), cmap="gray")
            ax.plot([13.5], [13.5], "r+", markersize=6, label="frame centre")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(titles[row])
    axes[0, 0].legend(loc="lower left", fontsize=6)
    fig.suptitle("RecenterByMass: random shift, then back to the centre of mass")
    fig.tight_layout()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "custom_transform.png", dpi=100)
    print(f"wrote {out / 'custom_transform.png'}")


if __name__ == "__main__":
    try:
        main()
    except mnist_data.MissingMNISTError as err:
        raise SystemExit(f"error: {err}") from None
