"""LoRA vs full fine-tuning at GPT-2-small shape: peak memory and time per training step.

Each contender runs in a fresh Python process (so one contender's freed memory cannot hide
another's peak), builds GPT-2 small (12 layers, width 768, vocabulary 50,257) with random
weights, and runs sprint 10's ``finetune.train_step`` (AdamW, gradient clipping, the loss
``finetune.py`` picks) on random token batches. Memory is the process's peak resident set size
from the moment the model is built (Linux's VmHWM, reset then), in total and above the
resident size at that moment; step time is the median over the timed steps of a run, and
the fastest run with ``--repeats`` > 1.

    flock -x /tmp/cpu.lock uv run python -m benchmarks.bench_lora
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path

_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
CONTENDERS = {  # "full" and "lora-chunked" are finetune.py's defaults
    "full": "full fine-tuning (chunked loss)",
    "lora": "LoRA r={rank} on c_attn, c_proj, c_fc, the model's own loss",
    "lora-chunked": "LoRA r={rank}, sprint 9's chunked loss (finetune.py's default)",
}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
    raise KeyError(field)


def rss_mb() -> float:
    """Resident memory now."""
    return _status_mb("VmRSS")


def reset_peak() -> None:
    """Forget the peak so far (Linux: writing 5 to clear_refs resets VmHWM), so that the
    model's construction, whose temporary copies exceed LoRA's training peak, is not
    counted."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset_peak (VmHWM, the number ru_maxrss reports
    for a process that never reset it)."""
    return _status_mb("VmHWM")


def worker(args) -> dict:
    """One contender, in this process: build, train ``warmup + steps`` steps, measure."""
    import contextlib

    import torch

    config_mod = import_module("sprints.08_gpt2_assembly.results.config")
    model_mod = import_module("sprints.08_gpt2_assembly.results.model")
    lm_loss = import_module("sprints.09_train_gpt2.results.lm_loss")
    optimizers = import_module("sprints.09_train_gpt2.results.optimizers")
    finetune = import_module("sprints.10_pretrained_and_generation.results.finetune")
    lora = import_module("sprints.10_pretrained_and_generation.results.lora")

    torch.manual_seed(0)
    model = model_mod.GPT(config_mod.GPTConfig.from_preset("gpt2")).train()
    built_mb = rss_mb()
    reset_peak()
    if args.worker != "full":
        lora.apply_lora(model, args.lora_rank, float(args.lora_rank))
    params = [p for p in model.parameters() if p.requires_grad]
    chunk = 0 if args.worker == "lora" else finetune.default_loss_chunk(model.config.vocab_size)
    loss_fn = lm_loss.LanguageModelLoss(model, chunk)
    optimizer = optimizers.build_optimizer(model, "adamw", 1e-4, 0.0, (0.9, 0.95),
                                           avoid_dynamo=True)
    g = torch.Generator().manual_seed(1)
    times = []
    for step in range(args.warmup + args.steps):
        x = torch.randint(0, 50257, (args.batch_size, args.block_size), generator=g)
        start = time.perf_counter()
        finetune.train_step(loss_fn, optimizer, params, x, x.roll(-1, 1), 1.0,
                            contextlib.nullcontext)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return {
        "contender": args.worker,
        "trainable": sum(p.numel() for p in params),
        "total": sum(p.numel() for p in model.parameters()),
        "built_mb": built_mb,
        "peak_mb": peak_rss_mb(),
        "step_s": statistics.median(times),
        "step_times": times,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    t = _arg_types
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=t.positive_int, default=4, help="timed steps")
    parser.add_argument("--warmup", type=t.non_negative_int, default=2, help="untimed steps")
    parser.add_argument("--batch-size", type=t.positive_int, default=2)
    parser.add_argument("--block-size", type=t.positive_int, default=128)
    parser.add_argument("--lora-rank", type=t.positive_int, default=8, help="(alpha = rank)")
    parser.add_argument("--repeats", type=t.positive_int, default=1,
                        help="rounds over the contenders (interleaved); the best round's step "
                        "time is reported (other jobs only ever slow a round down)")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS),
                        default=list(CONTENDERS))
    parser.add_argument("--out-dir", type=Path, default=Path("runs") / "bench_lora")
    parser.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return

    devices = import_module("sprints.01_setup_and_basics.results.devices")
    machine = devices.describe_cpu()
    print(f"machine: {machine}")
    print(f"GPT-2 small, random weights, batch {args.batch_size} x {args.block_size}, "
          f"{args.warmup} warm-up + {args.steps} timed steps, fresh process per run")
    runs: dict[str, list[dict]] = {name: [] for name in args.contenders}
    for round_ in range(args.repeats):
        for name in args.contenders:
            cmd = [sys.executable, "-m", "benchmarks.bench_lora", "--worker", name,
                   "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--batch-size", str(args.batch_size), "--block-size", str(args.block_size),
                   "--lora-rank", str(args.lora_rank)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                sys.exit(f"the {name} run failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].append(result)
            print(f"round {round_ + 1} {name:>15}: step {result['step_s']:.3f} s, peak "
                  f"{result['peak_mb']:,.0f} MB", flush=True)

    rows = []
    for name, results in runs.items():
        rows.append({
            "contender": name,
            "trainable": results[0]["trainable"],
            "step_s": min(r["step_s"] for r in results),
            "peak_mb": statistics.median(r["peak_mb"] for r in results),
            "above_model_mb": statistics.median(r["peak_mb"] - r["built_mb"] for r in results),
            "runs": results,
        })
    full = next((r for r in rows if r["contender"] == "full"), None)
    print("\n| contender | trainable parameters | step time | tokens/s | peak RSS | "
          "above the built model |")
    print("|---|---|---|---|---|---|")
    tokens = args.batch_size * args.block_size
    for r in rows:
        ratio = ""
        if full is not None and r is not full:
            less = full["above_model_mb"] / max(r["above_model_mb"], 1.0)
            ratio = (f" ({full['step_s'] / r['step_s']:.2f}x faster)", f" ({less:.1f}x less)")
        label = CONTENDERS[r["contender"]].format(rank=args.lora_rank)
        print(f"| {label} | {r['trainable']:,} | "
              f"{r['step_s']:.3f} s{ratio[0] if ratio else ''} | {tokens / r['step_s']:,.0f} | "
              f"{r['peak_mb']:,.0f} MB | {r['above_model_mb']:,.0f} MB"
              f"{ratio[1] if ratio else ''} |")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "results.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"machine": machine, "args": {k: v for k, v in vars(args).items()
                                                            if k != "out_dir"}, "rows": rows},
                              indent=2, default=str) + "\n")
    os.replace(tmp, out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
