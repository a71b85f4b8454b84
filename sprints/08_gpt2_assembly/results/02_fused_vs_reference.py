"""Same model, two code paths: torch's fused kernels vs the from-scratch modules of sprints 6-7.

    uv run python -m sprints.08_gpt2_assembly.results.02_fused_vs_reference

``fused=True`` runs ``F.scaled_dot_product_attention(is_causal=True)``, ``F.layer_norm`` and
``F.gelu(approximate="tanh")``; ``fused=False`` runs sprint 6's attention with an explicit
causal mask, sprint 7's LayerNorm formula and GELU formula. Prints the largest logit
difference between the two paths and the training throughput (forward + backward) of each.
"""

from __future__ import annotations

import argparse
import time

import torch

from .config import PRESETS, GPTConfig
from .model import GPT


def tokens_per_second(model: GPT, idx: torch.Tensor, steps: int) -> float:
    model(idx, idx)[1].backward()  # warm-up: one-time allocations and kernel choices
    start = time.perf_counter()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        model(idx, idx)[1].backward()
    return idx.numel() * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="medium-cpu", choices=sorted(PRESETS))
    parser.add_argument("--vocab-size", type=int, default=65, help="65: a character vocabulary")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per path")
    args = parser.parse_args()
    for flag in ("vocab_size", "batch_size", "seq_len", "steps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")

    torch.manual_seed(0)
    cfg = GPTConfig.from_preset(args.preset, vocab_size=args.vocab_size)
    if args.seq_len > cfg.block_size:
        parser.error(f"--seq-len {args.seq_len} exceeds the preset's block_size {cfg.block_size}")
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len))
    print(f"{args.preset}: {cfg.n_layer} layers x {cfg.n_embd} wide, {model.num_parameters():,} "
          f"parameters; batch {args.batch_size} x {args.seq_len} tokens, "
          f"{torch.get_num_threads()} threads")

    model.eval()
    with torch.no_grad():
        fast = model.set_fused(True)(idx)[0]
        slow = model.set_fused(False)(idx)[0]
    print(f"max |logits fused - logits reference| = {(fast - slow).abs().max().item():.2e}")

    model.train()
    for fused in (True, False):
        model.set_fused(fused)
        rate = tokens_per_second(model, idx, args.steps)
        name = "fused (torch kernels)   " if fused else "reference (sprints 6-7)"
        print(f"{name}: {rate:8.0f} tokens/s forward + backward")


if __name__ == "__main__":
    main()
