"""Multi-head attention, shape by shape, and proof that it equals torch.nn.MultiheadAttention.

Builds MultiHeadAttention(d_model=8, num_heads=2) from multi_head_attention.py, prints the
tensor shape after each step (project, split_heads, attend, combine_heads, out_proj), copies
torch's weights in and compares outputs and weights, and draws one weight map per head.

    uv run python -m sprints.06_multi_head_attention.results.02_multi_head_attention
"""

import argparse
from importlib import import_module
from pathlib import Path

# Argument types only (no torch), so --help answers at once.
arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")


def draw_heads(weights, tokens, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = weights.size(0)
    # squeeze=False keeps a (1, h) grid of axes even for one head, so the loop always works.
    fig, axes = plt.subplots(1, h, figsize=(4 * h, 3.6), squeeze=False)
    axes = axes[0]
    for i, ax in enumerate(axes):
        im = ax.imshow(weights[i].numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"head {i}")
        ax.set_xlabel("key position")
        if i == 0:
            ax.set_ylabel("query position")
        ax.set_xticks(range(len(tokens)), tokens)
        ax.set_yticks(range(len(tokens)), tokens)
    fig.colorbar(im, ax=list(axes), label="attention weight")
    fig.suptitle("Causal multi-head self-attention weights (random init)")
    fig.savefig(path, dpi=100, bbox_inches="tight")  # keeps the title whole for one head
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=arg_types.positive_int, default=8)
    parser.add_argument("--num-heads", type=arg_types.positive_int, default=2,
                        help="must divide --d-model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out-dir",
        default="runs/06_multi_head_attention",
        help="where the per-head weight picture is written",
    )
    args = parser.parse_args(argv)
    if args.d_model % args.num_heads:
        parser.error(f"--num-heads {args.num_heads} does not divide --d-model {args.d_model}: "
                     "each head gets d_model // num_heads channels; pick a divisor")

    import torch
    from torch import nn

    mha_mod = import_module("sprints.06_multi_head_attention.results.multi_head_attention")
    sdpa = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")

    torch.manual_seed(args.seed)
    torch.set_printoptions(precision=3, sci_mode=False)

    tokens = ["the", "cat", "sat", "down"]
    B, T, C = 1, len(tokens), args.d_model
    mha = mha_mod.MultiHeadAttention(C, args.num_heads).eval()
    x = torch.randn(B, T, C)
    print(f"MultiHeadAttention(d_model={C}, num_heads={args.num_heads}): head_dim = {mha.head_dim}")
    print(f"input x                      {tuple(x.shape)}  (B, T, C)")
    q = mha.q_proj(x)
    print(f"q = q_proj(x)                {tuple(q.shape)}  (B, T, C)")
    qh = mha.split_heads(q)
    print(f"split_heads(q)               {tuple(qh.shape)}  (B, h, T, hs)")
    kh, vh = mha.split_heads(mha.k_proj(x)), mha.split_heads(mha.v_proj(x))
    out_h, w = sdpa.scaled_dot_product_attention(qh, kh, vh, mask=sdpa.causal_mask(T))
    print(f"attention per head           {tuple(out_h.shape)}  weights {tuple(w.shape)}")
    merged = mha.combine_heads(out_h)
    print(f"combine_heads                {tuple(merged.shape)}  (B, T, h*hs)")
    out = mha.out_proj(merged)
    print(f"out_proj                     {tuple(out.shape)}  (B, T, C)")
    out2, w2 = mha(x, mask=sdpa.causal_mask(T))
    assert torch.allclose(out, out2) and torch.allclose(w, w2)
    print("the module's forward() gives the same tensors")
    print("\nhead 0 weights (causal: zeros above the diagonal):\n", w[0, 0].detach())

    ref = nn.MultiheadAttention(C, args.num_heads, batch_first=True).eval()
    mha_mod.copy_weights_from_torch(mha, ref)
    out, w = mha(x, mask=sdpa.causal_mask(T))
    # torch's boolean attn_mask is the opposite convention: True = NOT allowed.
    ref_out, ref_w = ref(x, x, x, attn_mask=~sdpa.causal_mask(T), average_attn_weights=False)
    print("\nafter copying torch.nn.MultiheadAttention's weights (in_proj_weight split in 3):")
    print(f"  max |output - torch|  = {(out - ref_out).abs().max():.2e}")
    print(f"  max |weights - torch| = {(w - ref_w).abs().max():.2e}")

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "multi_head_weights.png"
    draw_heads(w[0].detach(), tokens, path)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
