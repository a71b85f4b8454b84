"""Layer normalization on two tiny tokens, by hand and with the from-scratch LayerNorm.

Prints each step (mean, variance, normalized values, scale and shift), checks against
torch.nn.LayerNorm, and contrasts it with BatchNorm, which normalizes the other direction.
notes/01a_layer_norm_output_explanation.md walks through this output line by line.

    uv run python -m sprints.07_transformer_block.results.01_layer_norm_example
"""

import argparse
from importlib import import_module

# Argument types only (no torch), so --help answers at once.
arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=arg_types.non_negative_float, default=1e-5,
                        help="added to the variance before the square root (0 or more)")
    args = parser.parse_args(argv)

    import torch
    from torch import nn

    ln_mod = import_module("sprints.07_transformer_block.results.layer_norm")
    torch.set_printoptions(precision=4, sci_mode=False)

    # Two tokens with C = 4 features each; token 1 is token 0 times 10.
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    print("x (2 tokens, 4 features):\n", x)
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    print("\nmean over the features of each token:", mean.squeeze(-1))
    print("biased variance (divide by C = 4):     ", var.squeeze(-1))
    x_hat = (x - mean) / torch.sqrt(var + args.eps)
    print("\nx_hat = (x - mean) / sqrt(var + eps):\n", x_hat)
    print(
        "x_hat mean per token:",
        x_hat.mean(-1),
        " variance per token:",
        x_hat.var(-1, unbiased=False),
    )

    ln = ln_mod.LayerNorm(4, eps=args.eps)
    with torch.no_grad():
        print("\nLayerNorm(4) at init (weight=1, bias=0) gives x_hat:\n", ln(x))
        ln.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 0.0]))
        ln.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 3.0]))
        y = ln(x)
    print("with weight = [1, 2, 0.5, 0] and bias = [0, 0, 1, 3] (y = x_hat * weight + bias):\n", y)

    ref = nn.LayerNorm(4, eps=args.eps)
    ref.load_state_dict(ln.state_dict())
    with torch.no_grad():
        print(f"\nmax |ours - torch.nn.LayerNorm| = {(y - ref(x)).abs().max():.2e}")

    bn = nn.BatchNorm1d(4, affine=False).train()
    print("\nBatchNorm1d normalizes each FEATURE over the batch instead (column-wise):\n", bn(x))
    print("so its output for one token depends on the other tokens in the batch; LayerNorm's")
    print("does not, which is why Transformers (variable lengths, batch size 1) use LayerNorm.")


if __name__ == "__main__":
    main()
