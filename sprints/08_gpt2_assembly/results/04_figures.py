"""Sprint 8's pictures: GPT-2's block diagram with the tensor shape on every arrow, and the
causal mask next to real attention weights of a model.

    uv run python -m sprints.08_gpt2_assembly.results.04_figures
    uv run python -m sprints.08_gpt2_assembly.results.04_figures --checkpoint runs/x/best.pt

Writes into ``--out-dir`` (default: sprint 8's images/ folder):

- ``gpt2_block.png``: token ids -> embeddings -> n_layer pre-norm blocks (attention and MLP,
  each added to the residual stream) -> ln_f -> tied lm_head -> loss, shapes (B, T, C) etc.
- ``causal_mask_attention.png``: the (T, T) causal mask for T = 8, and the attention weights
  of each head of one layer on a short GPT-2-tokenized sentence. The weights come from
  ``--checkpoint`` (default: the Tiny Shakespeare model trained in this repository,
  runs/shakespeare_gpt2_small/best.pt) when that file exists; otherwise from a randomly
  initialized small GPT, and the picture says so. They are computed from the layer's own
  q and k and checked: weights @ v through c_proj must equal the layer's attention output.
"""

from __future__ import annotations

import argparse
import math
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

SPRINT_DIR = Path(__file__).resolve().parent.parent
IMAGES = SPRINT_DIR / "images"
REPO = SPRINT_DIR.parent.parent
DEFAULT_CHECKPOINT = REPO / "runs" / "shakespeare_gpt2_small" / "best.pt"
DEFAULT_TEXT = "ROMEO: But soft, what light through yonder window breaks?"


# ----- the block diagram -----------------------------------------------------------------------
def draw_block_diagram(path: Path) -> Path:
    """GPT-2's data flow, top to bottom, with the shape of the tensor on each arrow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9, 12))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    cx, width = 0.43, 0.62

    def box(y: float, text: str, color: str, height: float = 0.04) -> tuple[float, float]:
        ax.add_patch(FancyBboxPatch((cx - width / 2, y - height / 2), width, height,
                                    boxstyle="round,pad=0.006", fc=color, ec="black", lw=1))
        ax.text(cx, y, text, ha="center", va="center", fontsize=9.5)
        return y + height / 2, y - height / 2  # top, bottom

    def arrow(y_from: float, y_to: float, shape: str = "") -> None:
        ax.annotate("", xy=(cx, y_to), xytext=(cx, y_from),
                    arrowprops=dict(arrowstyle="-|>", lw=1.3, color="black"))
        if shape:
            ax.text(cx + 0.015, (y_from + y_to) / 2, shape, ha="left", va="center",
                    fontsize=9, color="tab:blue", family="monospace")

    def plus(y: float) -> tuple[float, float]:
        ax.add_patch(Circle((cx, y), 0.014, fc="white", ec="black", lw=1.2))
        ax.text(cx, y, "+", ha="center", va="center", fontsize=12)
        return y + 0.014, y - 0.014

    def residual(y_split: float, y_plus: float) -> None:
        """The skip path: from the stream around the sub-layer into the + circle."""
        side = cx + width / 2 + 0.04
        ax.plot([cx, side, side], [y_split, y_split, y_plus], color="tab:green", lw=1.5)
        ax.annotate("", xy=(cx + 0.014, y_plus), xytext=(side, y_plus),
                    arrowprops=dict(arrowstyle="-|>", lw=1.5, color="tab:green"))
        ax.text(side + 0.01, (y_split + y_plus) / 2, "residual\n(B, T, C)", fontsize=9,
                color="tab:green", va="center")

    ax.text(0.5, 0.985, "GPT-2, one forward pass (shapes on the arrows)", ha="center",
            fontsize=13, weight="bold")
    _, b = box(0.94, "token ids  idx", "#eeeeee", 0.035)
    t, b2 = box(0.87, "wte[idx] + wpe[0..T-1]   (token + position embeddings)", "#fde2c8")
    arrow(b, t, "(B, T)")
    # The repeated block, framed.
    ax.add_patch(FancyBboxPatch((0.08, 0.285), 0.84, 0.54, boxstyle="round,pad=0.01",
                                fc="none", ec="gray", lw=1.2, ls="--"))
    ax.text(0.1, 0.81, "GPTDecoderBlock  x n_layer", fontsize=10, color="gray", weight="bold")
    split1 = 0.80
    arrow(b2, split1, "(B, T, C)")
    t, b = box(0.76, "ln_1  (LayerNorm)", "#dbe9f6")
    ax.plot([cx, cx], [split1, t], color="black", lw=1.3)
    t2, b3 = box(0.645, "causal self-attention\nc_attn -> q, k, v: (B, nh, T, hs) each\n"
                        "softmax(q k^T / sqrt(hs), causal mask): (B, nh, T, T)\n"
                        "weights @ v -> (B, nh, T, hs) -> join heads -> c_proj",
                 "#f9d5d3", 0.12)
    arrow(b, t2, "(B, T, C)")
    pt, pb = plus(0.545)
    arrow(b3, pt, "(B, T, C)")
    residual(split1, 0.545)
    split2 = 0.515
    arrow(pb, split2 - 0.001)
    t, b = box(0.48, "ln_2  (LayerNorm)", "#dbe9f6")
    ax.plot([cx, cx], [split2, t], color="black", lw=1.3)
    t2, b4 = box(0.385, "MLP\nc_fc -> (B, T, 4C) -> GELU -> c_proj", "#d8f0d2", 0.07)
    arrow(b, t2, "(B, T, C)")
    pt, pb = plus(0.315)
    arrow(b4, pt, "(B, T, C)")
    residual(split2, 0.315)
    t, b = box(0.22, "ln_f  (final LayerNorm)", "#dbe9f6")
    arrow(pb, t, "(B, T, C)")
    t2, b2 = box(0.14, "lm_head = wte^T  (weight tying)", "#fde2c8")
    arrow(b, t2, "(B, T, C)")
    t, b = box(0.06, "logits -> cross-entropy with targets (B, T) -> loss", "#eeeeee", 0.035)
    arrow(b2, t, "(B, T, V)")
    ax.text(0.5, 0.012, "GPT-2 small: C = 768, nh = 12 heads of hs = 64, 4C = 3072, "
                        "V = 50,257, n_layer = 12, T <= 1024", ha="center", fontsize=9,
            color="dimgray")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ----- attention weights of a real model -----------------------------------------------------
def load_model(checkpoint: Path | None) -> tuple[Any, Any, str]:
    """(model, tokenizer, where it came from). A trained checkpoint if the file exists; else a
    seeded random 4 x 4 x 128 GPT with GPT-2's tokenizer."""
    import torch

    model_lib = import_module("sprints.08_gpt2_assembly.results.model")
    tok_lib = import_module("sprints.08_gpt2_assembly.results.tokenizer")
    if checkpoint is not None and checkpoint.is_file():
        model, ckpt = model_lib.GPT.from_checkpoint(checkpoint)
        tokenizer = tok_lib.tokenizer_from_record(ckpt.get("extra", {}).get("tokenizer"))
        step = ckpt.get("step")
        return model.eval(), tokenizer, f"trained model {checkpoint.name} (step {step})"
    config_lib = import_module("sprints.08_gpt2_assembly.results.config")
    torch.manual_seed(0)
    config = config_lib.GPTConfig(vocab_size=50257, block_size=64, n_layer=2, n_head=4,
                                  n_embd=128)
    where = f"checkpoint {checkpoint} not found: " if checkpoint is not None else ""
    return (model_lib.GPT(config).eval(), tok_lib.get_tokenizer("gpt2"),
            where + "a randomly initialized GPT (untrained: near-uniform weights)")


def attention_weights(model: Any, idx: Any, layer: int) -> Any:
    """The softmax weights (B, nh, T, T) of block ``layer``, from its own q and k.

    Runs the blocks below, then ln_1 and c_attn of this one; checks that the weights times v,
    joined and through c_proj, reproduce the layer's attention output (so these are the
    weights the model really used)."""
    import torch

    blocks = model.transformer.h
    B, T = idx.shape
    with torch.no_grad():
        x = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(T))  # (B, T, C)
        for block in blocks[:layer]:
            x = block(x)
        block = blocks[layer]
        h = block.ln_1(x)
        C, nh = h.size(-1), block.attn.n_head
        q, k, v = block.attn.c_attn(h).split(C, dim=-1)
        q, k, v = (z.view(B, T, nh, C // nh).transpose(1, 2) for z in (q, k, v))  # (B,nh,T,hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // nh)  # (B, nh, T, T)
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        y = (weights @ v).transpose(1, 2).reshape(B, T, C)
        expected = block.attn(h)
        diff = (block.attn.c_proj(y) - expected).abs().max().item()
        if diff > 1e-4:
            raise AssertionError(f"recomputed attention differs from layer {layer} by {diff}")
    return weights


def draw_mask_and_attention(path: Path, checkpoint: Path | None, text: str,
                            layer: int | None = None) -> tuple[Path, str]:
    """Left: the causal mask for T = 8; right: each head's weights on ``text``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    model, tokenizer, source = load_model(checkpoint)
    ids = tokenizer.encode(text)[: model.config.block_size]
    idx = torch.tensor([ids])
    layer = model.config.n_layer - 1 if layer is None else layer
    if not 0 <= layer < model.config.n_layer:
        raise ValueError(f"--layer {layer}: the model has layers 0..{model.config.n_layer - 1}")
    weights = attention_weights(model, idx, layer)[0]  # (nh, T, T)
    labels = [tokenizer.decode([i]).replace("\n", "\\n") for i in ids]
    nh = weights.size(0)
    cols = min(nh, 4)
    rows = math.ceil(nh / cols)
    fig = plt.figure(figsize=(4.2 * (cols + 1), 4.4 * rows + 0.6))
    grid = fig.add_gridspec(rows, cols + 1)
    ax = fig.add_subplot(grid[0, 0])
    mask = torch.ones(8, 8).tril()
    ax.imshow(mask.numpy(), cmap="Greys", vmin=0, vmax=1.4)
    for i in range(8):
        for j in range(8):
            ax.text(j, i, "1" if j <= i else "0", ha="center", va="center", fontsize=8,
                    color="white" if j <= i else "black")
    ax.set_title("causal mask, T = 8\n(1: query row may attend to key column)", fontsize=10)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    for h in range(nh):
        ax = fig.add_subplot(grid[h // cols, 1 + h % cols])
        ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"layer {layer}, head {h}", fontsize=10)
    fig.suptitle(f"attention weights (rows sum to 1, zero above the diagonal): {source}",
                 fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path, source


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        description="Draw gpt2_block.png (the block diagram with shapes) and "
                    "causal_mask_attention.png (the mask and a model's attention weights).")
    parser.add_argument("--out-dir", type=Path, default=IMAGES,
                        help=f"where the PNGs go (default {IMAGES.relative_to(REPO)})")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                        help="a trained checkpoint whose attention to draw; when the file is "
                             "missing, a randomly initialized GPT is drawn instead (default "
                             f"{DEFAULT_CHECKPOINT.relative_to(REPO)})")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="the sentence to attend over")
    parser.add_argument("--layer", type=int, default=None,
                        help="which block's attention (default: the last)")
    args = parser.parse_args(argv)
    if not args.text.strip():
        parser.error("--text is empty; give a short sentence")

    block = draw_block_diagram(args.out_dir / "gpt2_block.png")
    print(f"wrote {block}")
    try:
        attention, source = draw_mask_and_attention(args.out_dir / "causal_mask_attention.png",
                                                    args.checkpoint, args.text, args.layer)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"wrote {attention} ({source})")
    return [block, attention]


if __name__ == "__main__":
    main()
