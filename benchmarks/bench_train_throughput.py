"""Training throughput, side by side: our GPT + train step vs transformers.GPT2LMHeadModel.

    uv run python -m benchmarks.bench_train_throughput

Shape of the issue: 6 layers, 6 heads, width 384, GPT-2 vocabulary (50,257), block 256,
batch 16 (4,096 tokens per step). Each contender runs full training steps (forward, loss,
backward, gradient clipping, AdamW step, zero_grad) on the same random token batches; we
report tokens/s and model FLOPs utilisation (MFU) against the bf16 matmul peak measured in
this same run. A small character-level shape (the speedrun's) shows where bf16 stops paying,
which is the rule behind train_gpt2's ``--dtype auto``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F

lm_loss = import_module("sprints.09_train_gpt2.results.lm_loss")
optimizers = import_module("sprints.09_train_gpt2.results.optimizers")
GPTConfig = import_module("sprints.08_gpt2_assembly.results.config").GPTConfig
GPT = import_module("sprints.08_gpt2_assembly.results.model").GPT


OURS = "ours: bf16 autocast, chunked loss, fused AdamW"


def matmul_peak(dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    """FLOP/s of an n x n x n matmul (2 n^3 FLOPs), best of ``reps``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up (oneDNN picks its kernel)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block: int) -> float:
    """PaLM / nanoGPT estimate: 6 N (matmuls, forward + backward) + 12 L C T (attention)."""
    return 6 * n_params + 12 * n_layer * n_embd * block


def time_steps(step_fn, batches, warmup: int) -> float:
    for x, y in batches[:warmup]:
        step_fn(x, y)
    t = time.perf_counter()
    for x, y in batches[warmup:]:
        step_fn(x, y)
    return time.perf_counter() - t


def autocast(dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=dtype)


def ours(shape: dict, dtype, chunk: int, fused_adamw: bool | None):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=shape["vocab"], block_size=shape["block"], n_layer=shape["n_layer"],
                    n_head=shape["n_head"], n_embd=shape["n_embd"], dropout=0.0)
    model = GPT(cfg)
    loss_fn = lm_loss.LanguageModelLoss(model, chunk)
    opt = optimizers.build_optimizer(model, "adamw", 6e-4, 0.1, (0.9, 0.95), fused=fused_adamw)
    params = list(model.parameters())

    def step(x, y):
        with autocast(dtype):
            loss = loss_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    n = model.num_parameters(exclude_position_embeddings=True)
    return step, n


def hf(shape: dict, dtype):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=shape["vocab"], n_positions=shape["block"],
                     n_layer=shape["n_layer"], n_head=shape["n_head"], n_embd=shape["n_embd"],
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=6e-4,
                            betas=(0.9, 0.95))
    params = list(model.parameters())

    def step(x, y):
        with autocast(dtype):
            logits = model(input_ids=x).logits
            # the same next-token loss as ours (HF's labels= would shift x by itself)
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    n = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()
    return step, n


def run_shape(shape: dict, contenders: list, steps: int, warmup: int, rounds: int,
              peak_bf16: float) -> list:
    """Round-robin: every round times ``steps`` steps of each contender in turn, and each
    contender keeps its best round. Other processes on a shared machine slow whatever runs
    while they run; interleaving spreads that noise over all contenders alike."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(warmup + steps):
        w = torch.randint(0, shape["vocab"], (shape["batch"], shape["block"] + 1), generator=g)
        batches.append((w[:, :-1], w[:, 1:]))
    built = [(name, *make()) for name, make in contenders]
    best = {name: float("inf") for name, _, _ in built}
    for r in range(rounds):
        for name, step, _ in built:
            seconds = time_steps(step, batches if r == 0 else batches[warmup:],
                                 warmup if r == 0 else 0)
            best[name] = min(best[name], seconds)
    rows = []
    for name, _, n_params in built:
        tok_s = steps * shape["batch"] * shape["block"] / best[name]
        fpt = flops_per_token(n_params, shape["n_layer"], shape["n_embd"], shape["block"])
        rows.append({"shape": shape["name"], "contender": name, "tokens_per_s": tok_s,
                     "mfu_vs_bf16_peak": tok_s * fpt / peak_bf16})
        mfu = 100 * rows[-1]["mfu_vs_bf16_peak"]
        print(f"  {name:<42s} {tok_s:9,.0f} tokens/s   MFU {mfu:5.1f}%", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2, help="timed steps per contender per round")
    p.add_argument("--rounds", type=int, default=3, help="round-robin rounds (best one counts)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-small", action="store_true", help="only the GPT-2-vocabulary shape")
    p.add_argument("--extra", action="store_true",
                   help="also ours with foreach AdamW, with the plain loss, and in fp32")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "bench_train_throughput")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak_bf16 = matmul_peak(torch.bfloat16)
    peak_fp32 = matmul_peak(torch.float32, n=2048)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak: "
          f"bf16 {peak_bf16 / 1e12:.2f} TFLOP/s, fp32 {peak_fp32 / 1e12:.2f} TFLOP/s")
    bf16, fp32 = torch.bfloat16, torch.float32
    big = dict(name="6x384 vocab 50257 T256 B16", n_layer=6, n_head=6, n_embd=384,
               vocab=50257, block=256, batch=16)
    print(f"\n{big['name']}:")
    contenders = [
        ("transformers GPT2LMHeadModel fp32", lambda: hf(big, fp32)),
        ("transformers GPT2LMHeadModel bf16 autocast", lambda: hf(big, bf16)),
        (OURS, lambda: ours(big, bf16, 2048, True)),
    ]
    if args.extra:
        contenders += [
            ("ours bf16, plain loss, fused AdamW", lambda: ours(big, bf16, 0, True)),
            ("ours bf16 + chunked loss, foreach AdamW", lambda: ours(big, bf16, 2048, None)),
            ("ours fp32 + chunked loss, fused AdamW", lambda: ours(big, fp32, 2048, True)),
        ]
    rows = run_shape(big, contenders, args.steps, args.warmup, args.rounds, peak_bf16)
    by = {r["contender"]: r["tokens_per_s"] for r in rows}
    best_hf = max(v for k, v in by.items() if k.startswith("transformers"))
    speedup = by[OURS] / best_hf
    print(f"  ours / fastest transformers setting: {speedup:.2f}x")
    if not args.skip_small:
        small = dict(name="4x128 vocab 65 T64 B12 (speedrun shape)", n_layer=4, n_head=4,
                     n_embd=128, vocab=65, block=64, batch=12)
        print(f"\n{small['name']}:")
        rows += run_shape(small, [("ours fp32", lambda: ours(small, fp32, 0, True)),
                                  ("ours bf16 autocast", lambda: ours(small, bf16, 0, True))],
                          30, 10, args.rounds, peak_bf16)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    result = {"peak_bf16_flops": peak_bf16, "peak_fp32_flops": peak_fp32, "rows": rows,
              "speedup_vs_fastest_transformers": speedup, "torch": torch.__version__}
    (args.out_dir / "throughput.json").write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out_dir / 'throughput.json'}")


if __name__ == "__main__":
    main()
