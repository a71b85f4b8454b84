"""What int8 weights cost in accuracy: perplexity and logits of a trained GPT, int8 vs float32.

    uv run python -m sprints.09_train_gpt2.results.train_gpt2 --data-file input.txt \\
        --tokenizer gpt2 --n-layer 4 --n-head 4 --n-embd 256 --block-size 128 \\
        --batch-size 16 --max-steps 600 --eval-interval 600 --out-dir runs/shakespeare_gpt2_small
    uv run python -m benchmarks.bench_quantize --checkpoint runs/shakespeare_gpt2_small/best.pt \\
        --data-file input.txt

The validation text is the last 10% of ``--data-file`` (train_gpt2's split), encoded with the
checkpoint's tokenizer, cut into windows of the model's block size. Two int8 paths, both with
quantize.py's per-channel int8 weights:

- full windows (the prompt path): float activations times int8 weights;
- decoding, one token at a time with the KV cache, through both steps that generation runs:
  NumbaStep (what ``generate`` uses on a CPU: each token's activations rounded to int16 per
  block of 256 before the integer products) and DecodeStep (PyTorch's quantized matmul,
  fbgemm on x86: activations rounded to int8).

For each: the perplexity exp(mean cross-entropy) against float32's, the largest and mean
absolute logit change, and how often the top-1 token stays the same.
"""

from __future__ import annotations

import argparse
import json
import math
from importlib import import_module
from pathlib import Path

_devices = import_module("sprints.01_setup_and_basics.results.devices")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a train_gpt2/finetune checkpoint")
    parser.add_argument("--data-file", required=True, help="the text it was trained on")
    parser.add_argument("--max-windows", type=int, default=64,
                        help="validation windows for the full-window path")
    parser.add_argument("--decode-windows", type=int, default=4,
                        help="windows decoded token by token (slower)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench_quantize"))
    return parser


def compare(ref, other, targets) -> dict:
    """Logits ``other`` against the float32 ``ref`` (both (N, T, V)) on ``targets`` (N, T)."""
    import torch.nn.functional as F

    def perplexity(logits) -> float:
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)).item()
        return round(math.exp(ce), 3)

    diff = (other - ref).abs()
    ppl_fp32, ppl_int8 = perplexity(ref), perplexity(other)
    return {"ppl_fp32": ppl_fp32, "ppl_int8": ppl_int8,
            "ppl_change": round(ppl_int8 / ppl_fp32 - 1, 5),
            "max_abs_logit_change": round(diff.max().item(), 4),
            "mean_abs_logit_change": round(diff.mean().item(), 5),
            "logit_std": round(ref.std().item(), 3),
            "top1_same": round((other.argmax(-1) == ref.argmax(-1)).float().mean().item(), 4)}


def decode(qmodel, x, first_logits, step_class):
    """Teacher-forced decoding of windows ``x`` (m, T) one token at a time through
    ``step_class(qmodel, cache)``: the (m, T, V) logits, position 0 taken from
    ``first_logits`` (m, V), the full-window path's (a 1-token prompt has no step to test)."""
    import torch

    cached_forward = import_module("sprints.10_pretrained_and_generation.results.cached_forward")
    kv_cache = import_module("sprints.10_pretrained_and_generation.results.kv_cache")
    windows = []
    with torch.no_grad():
        for w in range(x.size(0)):
            cache = kv_cache.KVCache.for_model(qmodel, batch_size=1)
            cached_forward.forward_with_cache(qmodel, x[w : w + 1, :1], cache)
            step = step_class(qmodel, cache)
            rows = [first_logits[w]]
            for t in range(1, x.size(1)):
                rows.append(step(x[w : w + 1, t : t + 1])[0])
            windows.append(torch.stack(rows))
    return torch.stack(windows)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    import copy

    import torch

    generate = import_module("sprints.10_pretrained_and_generation.results.generate")
    quantize = import_module("sprints.10_pretrained_and_generation.results.quantize")
    kv_cache = import_module("sprints.10_pretrained_and_generation.results.kv_cache")
    decode_step = import_module("sprints.10_pretrained_and_generation.results.decode_step")
    numba_step = import_module("sprints.10_pretrained_and_generation.results.numba_step")

    model, tokenizer = generate.load_from_checkpoint(args.checkpoint)
    model.eval()
    qmodel = quantize.quantize_int8(copy.deepcopy(model))
    text = Path(args.data_file).read_text(encoding="utf-8")
    val = torch.tensor(tokenizer.encode(text[int(0.9 * len(text)):]))
    T = model.config.block_size
    n = min(args.max_windows, (len(val) - 1) // T)
    x = val[: n * T].view(n, T)
    y = val[1 : n * T + 1].view(n, T)
    print(f"machine: {_devices.describe_cpu()}")
    print(f"model: {args.checkpoint}, {model.num_parameters():,} parameters, "
          f"{quantize.weight_bytes(model) / 1e6:.1f} MB float32 -> "
          f"{quantize.weight_bytes(qmodel) / 1e6:.1f} MB int8; validation {n} x {T} tokens")

    report = {"machine": _devices.describe_cpu(), "checkpoint": str(args.checkpoint)}
    with torch.no_grad():
        ref = model(x)[0]
        full = qmodel(x)[0]
    row = compare(ref, full, y)
    report["full_windows"] = row
    print(f"full windows : perplexity {row['ppl_fp32']:.3f} (fp32) -> {row['ppl_int8']:.3f} "
          f"(int8), {row['ppl_change']:+.3%}; logits move by {row['mean_abs_logit_change']} "
          f"on average, {row['max_abs_logit_change']} at most (their std "
          f"{row['logit_std']}); top-1 token the same at {row['top1_same']:.2%}")

    # the generation path: token by token with the cache, teacher-forced on the same text
    m = min(args.decode_windows, n)
    probe = kv_cache.KVCache.for_model(qmodel, batch_size=1)
    steps = [("decoding", decode_step.DecodeStep, "int8 weights and activations")]
    if numba_step.supports(qmodel, probe):  # numba installed and GEN_STEP not torch
        steps.insert(0, ("decoding_numba", numba_step.NumbaStep, "int8 weights, int16 activations"))
    for key, step_class, what in steps:
        row = compare(ref[:m], decode(qmodel, x[:m], full[:m, 0], step_class), y[:m])
        report[key] = row
        print(f"{step_class.__name__:<12} : perplexity {row['ppl_fp32']:.3f} (fp32) -> "
              f"{row['ppl_int8']:.3f} ({what}), {row['ppl_change']:+.3%} over {m} x {T} "
              f"tokens; logits move by {row['mean_abs_logit_change']} on average, "
              f"{row['max_abs_logit_change']} at most; top-1 the same at {row['top1_same']:.2%}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"report: {args.out_dir / 'report.json'}")


if __name__ == "__main__":
    main()
