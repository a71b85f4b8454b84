"""Check autograd's gradient against the closed form, central differences and gradcheck.

f(x) = sum(x^2 * sin(x)); see gradient_check.py and notes/02c_autograd.md.
"""

import argparse

import torch

from .arg_types import positive_int
from .gradient_check import central_difference_grad, demo_function, demo_function_grad


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=positive_int, default=5, help="length of the input vector x")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    g = torch.Generator().manual_seed(args.seed)
    # float64: finite differences divide a tiny difference by a tiny eps, so they need the digits.
    x = torch.randn(args.n, generator=g, dtype=torch.float64, requires_grad=True)
    demo_function(x).backward()
    closed = demo_function_grad(x.detach())
    numeric = central_difference_grad(demo_function, x.detach(), eps=1e-6)
    torch.set_printoptions(precision=10)
    print(f"x                 = {x.detach()}")
    print(f"autograd x.grad   = {x.grad}")
    print(f"closed form       = {closed}")
    print(f"central diff      = {numeric}")
    print(f"max |autograd - closed form|  = {(x.grad - closed).abs().max().item():.2e}")
    print(f"max |autograd - central diff| = {(x.grad - numeric).abs().max().item():.2e}")

    print("\nHow the central-difference error depends on eps (float64):")
    print("  too large -> truncation error ~ eps^2; too small -> rounding error ~ 1e-16 / eps")
    for eps in (1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8, 1e-10):
        err = (central_difference_grad(demo_function, x.detach(), eps) - closed).abs().max()
        print(f"  eps={eps:7.0e}  max error {err.item():.2e}")

    # gradcheck compares autograd's full Jacobian with its own finite differences and
    # raises (or returns False) when they disagree beyond atol/rtol.
    ok = torch.autograd.gradcheck(demo_function, (x.detach().clone().requires_grad_(),))
    print(f"\ntorch.autograd.gradcheck(demo_function, (x,)) -> {ok}")
    bad = torch.autograd.gradcheck(
        _wrong_backward_function, (x.detach().clone().requires_grad_(),), raise_exception=False
    )
    print(f"gradcheck on a function whose backward is deliberately wrong -> {bad}")


class _WrongSin(torch.autograd.Function):
    """sin whose backward returns cos(x) + 1, so gradcheck has something to catch."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * (torch.cos(x) + 1.0)  # the true derivative is cos(x)


def _wrong_backward_function(x: torch.Tensor) -> torch.Tensor:
    return _WrongSin.apply(x).sum()


if __name__ == "__main__":
    main()
