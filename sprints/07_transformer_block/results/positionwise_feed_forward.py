"""Position-wise feed-forward network: the same two-layer MLP applied to every token.

    FFN(x) = fc2(act(fc1(x)))      fc1: d_model -> d_ff, fc2: d_ff -> d_model

"Position-wise" means the Linear layers act on the last dim only, so (B, T, C) -> (B, T, C)
with no mixing between positions (mixing is attention's job).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


def gelu_tanh(x: Tensor) -> Tensor:
    """GPT-2's tanh approximation of GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def get_activation(name: str):
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu  # exact GELU: x * Phi(x)
    if name == "gelu_tanh":
        return gelu_tanh
    raise ValueError(f"activation must be one of {ACTIVATIONS}; got {name!r}")


class PositionwiseFeedForward(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "relu",
        bias: bool = True,
    ):
        super().__init__()
        self.activation_name = activation
        self.activation = get_activation(activation)
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)  # expand, usually d_ff = 4 * d_model
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)  # project back to the residual width
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        # (B, T, d_model) -> (B, T, d_ff) -> (B, T, d_model)
        return self.dropout(self.fc2(self.activation(self.fc1(x))))

    def extra_repr(self) -> str:
        return f"activation={self.activation_name!r}"


def main(argv=None):
    import argparse
    from importlib import import_module

    arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
    parser = argparse.ArgumentParser(
        description="Position-wise feed-forward network: shapes, activations, position-wise check"
    )
    parser.add_argument("--d-model", type=arg_types.positive_int, default=8)
    parser.add_argument("--d-ff", type=arg_types.positive_int, default=32)
    parser.add_argument("--activation", default="gelu_tanh", choices=ACTIVATIONS)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_printoptions(precision=4, sci_mode=False)

    z = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    print("z         ", z)
    for name in ACTIVATIONS:
        print(f"{name:10s}", get_activation(name)(z))

    ffn = PositionwiseFeedForward(args.d_model, args.d_ff, activation=args.activation).eval()
    x = torch.randn(2, 5, args.d_model)
    h = ffn.fc1(x)
    print(
        f"\nx {tuple(x.shape)} -> fc1 {tuple(h.shape)} -> {args.activation} -> fc2 "
        f"{tuple(ffn(x).shape)}"
    )
    n_params = sum(p.numel() for p in ffn.parameters())
    print(f"parameters: 2 * d_model * d_ff + d_ff + d_model = {n_params}")
    # Position-wise: token 3 alone gives the same output as token 3 inside the sequence.
    with torch.no_grad():
        alone = ffn(x[:, 3:4])
        diff = (alone - ffn(x)[:, 3:4]).abs().max()
    print(f"token 3 processed alone vs in the sequence: max difference {diff:.1e}")


if __name__ == "__main__":
    main()
