"""Build GPT-2 small (or another preset), print where its parameters live, run one forward pass.

    uv run python -m sprints.08_gpt2_assembly.results.01_build_gpt2_small
    uv run python -m sprints.08_gpt2_assembly.results.01_build_gpt2_small --preset tiny

Prints a parameter table (embeddings, one block broken into its layers, all blocks, the
final LayerNorm, the tied output head), checks the total against the closed-form count, then
feeds a random batch through the model and prints the shapes and the initial loss, which
for an untrained model is close to ln(vocab_size): every token looks equally likely.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from .config import PRESETS, GPTConfig
from .model import GPT


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_table(model: GPT) -> list[tuple[str, str, int]]:
    """Rows (name, shape, parameters), each parameter counted once."""
    t, cfg = model.transformer, model.config
    block = t.h[0]
    rows = [
        ("transformer.wte (token embedding)", tuple(t.wte.weight.shape), count(t.wte)),
        ("transformer.wpe (position embedding)", _shape(t.wpe), count(t.wpe)),
    ]
    for name in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
        sub = block.get_submodule(name)
        rows.append((f"  h.0.{name}", tuple(sub.weight.shape), count(sub)))
    rows.append(("transformer.h[0] (one block)", (), count(block)))
    rows.append((f"transformer.h (all {cfg.n_layer} blocks)", (), count(t.h)))
    rows.append(("transformer.ln_f", tuple(t.ln_f.weight.shape), count(t.ln_f)))
    rows.append(("lm_head (tied to wte: no new parameters)", tuple(model.lm_head.weight.shape), 0))
    return rows


def _shape(module: torch.nn.Module) -> tuple[int, ...]:
    params = list(module.parameters())
    return tuple(params[0].shape) if params else ()


def closed_form(cfg: GPTConfig) -> int:
    """V*C + P*C (embeddings) + L * (12 C^2 + 13 C) (blocks) + 2 C (ln_f)."""
    C = cfg.n_embd
    pos = cfg.block_size * C if cfg.position_encoding == "learned" else 0
    return cfg.vocab_size * C + pos + cfg.n_layer * (12 * C * C + 13 * C) + 2 * C


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="gpt2", choices=sorted(PRESETS))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for flag in ("batch_size", "seq_len"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")

    torch.manual_seed(args.seed)
    cfg = GPTConfig.from_preset(args.preset)
    if args.seq_len > cfg.block_size:
        parser.error(f"--seq-len {args.seq_len} exceeds the preset's block_size {cfg.block_size}")
    print(f"config: {cfg}")
    start = time.perf_counter()
    model = GPT(cfg)
    print(f"built and initialized in {time.perf_counter() - start:.1f} s\n")

    print(f"{'module':<44} {'weight shape':>14} {'parameters':>13}")
    for name, shape, n in parameter_table(model):
        print(f"{name:<44} {str(shape) if shape else '':>14} {n:>13,}")
    total = model.num_parameters()
    print(f"{'total (tied wte/lm_head counted once)':<44} {'':>14} {total:>13,}")
    print(f"closed form V*C + P*C + L*(12C^2 + 13C) + 2C = {closed_form(cfg):,}")
    print(f"without position embeddings: {model.num_parameters(True):,}")
    untied = total + model.lm_head.weight.numel()
    print(f"an untied output layer would add {model.lm_head.weight.numel():,} (total {untied:,})")
    print(f"fp32 weights: {total * 4 / 2**20:.0f} MiB\n")

    idx = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len))
    targets = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len))
    model.eval()  # no dropout; no_grad: no graph kept for a backward pass
    with torch.no_grad():
        times = []
        for _ in range(2):  # the first call also pays one-time kernel setup
            start = time.perf_counter()
            logits, loss = model(idx, targets)
            times.append(time.perf_counter() - start)
    print(f"input idx      {tuple(idx.shape)}  (batch, time) token ids")
    print(f"logits         {tuple(logits.shape)}  (batch, time, vocab_size)")
    print(f"forward pass   {times[0] * 1000:.0f} ms first call, {times[1] * 1000:.0f} ms second")
    print(f"initial loss   {loss.item():.3f}  vs ln(vocab_size) = {math.log(cfg.vocab_size):.3f}")
    probs = torch.softmax(logits[0, -1], dim=-1)
    print(
        f"next-token probabilities at the last position: max {probs.max():.2e}, "
        f"min {probs.min():.2e}, uniform would be {1 / cfg.vocab_size:.2e}"
    )


if __name__ == "__main__":
    main()
