"""Add & Norm: post-norm (original Transformer) vs pre-norm (GPT-2), on numbers you can read
and then in a deep stack.

Part 1 prints each step of both orders for one token with a tiny Linear sub-layer. Part 2
builds a stack of residual feed-forward blocks at initialization and prints, per depth, the
size of the residual stream and of the gradient reaching each block, for both placements.

    uv run python -m sprints.07_transformer_block.results.02_residual_connection_example
"""

import argparse
from importlib import import_module

# Argument types only (no torch), so --help answers at once.
arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
RESIDUAL = "sprints.07_transformer_block.results.residual"
FFN = "sprints.07_transformer_block.results.positionwise_feed_forward"


def deep_stack_stats(norm_first, depth, d_model, seed):
    import torch
    from torch import nn

    res_mod, ffn_mod = import_module(RESIDUAL), import_module(FFN)
    torch.manual_seed(seed)
    residuals = nn.ModuleList(
        res_mod.ResidualConnection(d_model, norm_first=norm_first) for _ in range(depth)
    )
    ffns = nn.ModuleList(
        ffn_mod.PositionwiseFeedForward(d_model, 4 * d_model) for _ in range(depth)
    )
    x = torch.randn(8, 16, d_model)
    stream_std = []
    for residual, ffn in zip(residuals, ffns, strict=True):
        x = residual(x, ffn)
        stream_std.append(x.std().item())
    if norm_first:
        x = nn.functional.layer_norm(x, (d_model,))  # pre-norm stacks end with one LayerNorm
    # A fixed random read-out as the "loss" (mean(x**2) would be ~constant after a LayerNorm).
    readout = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1))
    (x * readout).mean().backward()
    grad_norm = [ffn.fc1.weight.grad.norm().item() for ffn in ffns]
    return stream_std, grad_norm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=arg_types.positive_int, default=24,
                        help="blocks in the deep stack")
    parser.add_argument("--d-model", type=arg_types.positive_int, default=64,
                        help="features per token (at least 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.d_model < 2:
        # LayerNorm of a single feature is always 0 (x minus its own mean): no signal, no
        # gradient, nothing to compare.
        parser.error(f"--d-model must be at least 2 for LayerNorm to mean anything; "
                     f"got {args.d_model}")

    import torch
    from torch import nn

    res_mod = import_module(RESIDUAL)
    torch.set_printoptions(precision=4, sci_mode=False)

    torch.manual_seed(args.seed)
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])  # (B=1, T=1, C=4)
    sublayer = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        sublayer.weight.copy_(torch.eye(4) * 0.5)  # sub-layer(x) = x / 2, easy to follow
        post = res_mod.ResidualConnection(4, norm_first=False)
        pre = res_mod.ResidualConnection(4, norm_first=True)
        print("x =", x[0, 0], "  sub-layer(v) = 0.5 * v")
        print("\npost-norm  LayerNorm(x + sublayer(x)):")
        print("  x + sublayer(x)      =", (x + sublayer(x))[0, 0])
        print("  LayerNorm(that)      =", post(x, sublayer)[0, 0])
        print("\npre-norm   x + sublayer(LayerNorm(x)):")
        print("  LayerNorm(x)         =", pre.norm(x)[0, 0])
        print("  sublayer(LayerNorm)  =", sublayer(pre.norm(x))[0, 0])
        print("  x + that             =", pre(x, sublayer)[0, 0])
    print("\npost-norm's output always has mean 0 / variance 1; pre-norm's keeps x's scale,")
    print("because x reaches the output through the '+' untouched.")

    print(f"\nDeep stack: {args.depth} residual FFN blocks, d_model={args.d_model}, at init")
    post_std, post_grad = deep_stack_stats(False, args.depth, args.d_model, args.seed)
    pre_std, pre_grad = deep_stack_stats(True, args.depth, args.d_model, args.seed)
    print(
        f"{'block':>5} | {'stream std post':>15} {'pre':>8} | {'grad |fc1| post':>15} {'pre':>10}"
    )
    # First two, middle and last two blocks; a shallow stack has fewer distinct ones.
    rows = {0, 1, args.depth // 2, args.depth - 2, args.depth - 1} & set(range(args.depth))
    for i in sorted(rows):
        print(
            f"{i:5d} | {post_std[i]:15.3f} {pre_std[i]:8.3f} | {post_grad[i]:15.2e} "
            f"{pre_grad[i]:10.2e}"
        )
    print(
        f"first/last block gradient ratio: post-norm {post_grad[0] / post_grad[-1]:.2f}, "
        f"pre-norm {pre_grad[0] / pre_grad[-1]:.2f}"
    )


if __name__ == "__main__":
    main()
