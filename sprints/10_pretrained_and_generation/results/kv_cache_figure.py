"""Draw kv_cache.png: what a KV cache holds during generation, step by step.

    uv run python -m sprints.10_pretrained_and_generation.results.kv_cache_figure

One row per forward pass: the prefill reads the whole prompt (``--prompt-len`` tokens) and
writes all their keys and values; each decoding step feeds one new token, writes one new K/V
row and reads every cached row. Columns are the cache's slots (positions 0..max_len-1 of
``k, v: (n_layer, B, n_head, max_len, head_dim)``, notes/02_kv_cache.md). Each row is labelled
with the shapes of that step: the queries (B, nh, T_new, hs) and the keys attended to
(B, nh, length + T_new, hs).
"""

from __future__ import annotations

import argparse
from importlib import import_module
from pathlib import Path

IMAGES = Path(__file__).resolve().parent.parent / "images"
_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")


def draw_kv_cache(path: Path, prompt_len: int = 4, decode_steps: int = 3) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    max_len = prompt_len + decode_steps + 1  # one slot left empty at the end
    rows = 1 + decode_steps
    colors = {"new": "#f4a261", "cached": "#7fb3d5", "empty": "#f2f2f2"}
    fig, ax = plt.subplots(figsize=(1.0 * max_len + 6.5, 1.0 * rows + 1.8))
    for r in range(rows):
        y = rows - 1 - r
        length = 0 if r == 0 else prompt_len + r - 1  # cached before this pass
        t_new = prompt_len if r == 0 else 1
        for slot in range(max_len):
            kind = ("cached" if slot < length else "new" if slot < length + t_new
                    else "empty")
            ax.add_patch(Rectangle((slot, y), 0.94, 0.8, fc=colors[kind], ec="black", lw=0.8))
            if kind != "empty":
                ax.text(slot + 0.47, y + 0.4, f"k{slot}\nv{slot}", ha="center", va="center",
                        fontsize=8)
        name = f"prefill (prompt of {prompt_len})" if r == 0 else f"decode step {r}"
        queries = f"positions 0..{prompt_len - 1}" if r == 0 else f"position {length}"
        ax.text(-0.3, y + 0.4, name, ha="right", va="center", fontsize=10, weight="bold")
        ax.text(max_len + 0.3, y + 0.4,
                f"input: {t_new} token{'s' if t_new > 1 else ''} ({queries})\n"
                f"q: (B, nh, {t_new}, hs)   k, v read: (B, nh, {length + t_new}, hs)\n"
                f"scores: (B, nh, {t_new}, {length + t_new})"
                + ("  causal mask" if t_new > 1 else "  no mask needed"),
                ha="left", va="center", fontsize=9, family="monospace")
    for slot in range(max_len):
        ax.text(slot + 0.47, rows + 0.1, str(slot), ha="center", va="bottom", fontsize=9)
    ax.text(max_len / 2, rows + 0.55, "cache slot = position", ha="center", fontsize=10)
    ax.legend(handles=[Patch(fc=colors["new"], ec="black", label="written this pass (new K/V)"),
                       Patch(fc=colors["cached"], ec="black", label="cached earlier, only read"),
                       Patch(fc=colors["empty"], ec="black", label="empty slot")],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False, fontsize=9)
    ax.set_xlim(-4.2, max_len + 6.3)
    ax.set_ylim(-0.3, rows + 1.0)
    ax.axis("off")
    ax.set_title("KV cache: the prefill writes the prompt's keys and values; each decoding step "
                 "adds one row and reads them all", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=IMAGES,
                        help="where kv_cache.png goes (default: sprint 10's images/)")
    parser.add_argument("--prompt-len", type=_arg_types.positive_int, default=4,
                        help="prompt tokens read by the prefill (default 4)")
    parser.add_argument("--decode-steps", type=_arg_types.positive_int, default=3,
                        help="one-token decoding steps after it (default 3)")
    args = parser.parse_args(argv)
    if args.prompt_len + args.decode_steps > 24:
        parser.error("--prompt-len + --decode-steps must be at most 24 to stay readable")
    path = draw_kv_cache(args.out_dir / "kv_cache.png", args.prompt_len, args.decode_steps)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
