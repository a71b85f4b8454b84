"""Follow one batch through the sprint-4 CNN: the shape after every layer, parameter counts.

    uv run python -m sprints.04_advanced_training_mnist.results.01_cnn_shapes
"""

import argparse
from importlib import import_module

import torch

arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
cnn = import_module("sprints.04_advanced_training_mnist.results.cnn")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=arg_types.positive_int, default=32,
                        help="channels of the first block")
    parser.add_argument("--batch-size", type=arg_types.positive_int, default=4)
    args = parser.parse_args(argv)

    model = cnn.MnistCNN(width=args.width).eval()
    x = torch.randn(args.batch_size, 1, 28, 28)
    print(f"{'layer':<44} {'output shape':<20} {'params':>8}")
    print(f"{'input':<44} {str(tuple(x.shape)):<20} {'':>8}")
    with torch.no_grad():
        for part in (model.features, model.head):
            for layer in part:
                x = layer(x)
                n = sum(p.numel() for p in layer.parameters())
                name = " ".join(type(m).__name__ for m in layer.modules()
                                if not isinstance(m, torch.nn.Sequential)) or type(layer).__name__
                print(f"{name:<44} {str(tuple(x.shape)):<20} {n:>8,}")
    total = sum(p.numel() for p in model.parameters())
    print(f"total parameters: {total:,}")


if __name__ == "__main__":
    main()
