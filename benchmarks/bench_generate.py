"""Greedy generation speed: this repository's GPT + KV cache vs transformers' generate.

One run, the same random GPT-2-small-shaped weights on both sides (transformers builds
``GPT2LMHeadModel(GPT2Config())``, saves it, and our GPT loads that directory), greedy
decoding of ``--new-tokens`` tokens from a ``--prompt-len``-token prompt, in fp32 and with
bf16 weights, cached and uncached. Each figure is also given as a fraction of the
memory-bandwidth ceiling: a cached decoding step reads every weight once, so

    ceiling tokens/s = copy bandwidth (bytes/s) / bytes of weights

with the bandwidth measured in the same run by copying a large tensor.

    flock -x /tmp/cpu.lock uv run python -m benchmarks.bench_generate
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from importlib import import_module


def measure_bandwidth(megabytes: int = 512, repeats: int = 5) -> tuple[float, float]:
    """(copy, read) bandwidth in bytes/s, best of ``repeats``.

    copy: ``dst.copy_(src)``, counting each byte once (as "copies memory at X GB/s" does),
    although a copy reads it and writes it. read: ``src.sum()``, a pure read stream like
    the weights of a decoding step. Reads alone run faster than copies, so decoding can
    beat the copy-based ceiling; the read-based one is the tighter physical bound.
    """
    import torch

    n = megabytes * 2**20 // 4
    src = torch.ones(n, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch the pages first
    copy = read = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        copy = min(copy, time.perf_counter() - start)
        start = time.perf_counter()
        src.sum()
        read = min(read, time.perf_counter() - start)
    return n * 4 / copy, n * 4 / read


def _time(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--prompt-len", type=int, default=4)
    parser.add_argument(
        "--dtypes", default="float32,bfloat16", help="comma list of float32, bfloat16"
    )
    parser.add_argument(
        "--uncached", default="float32,bfloat16",
        help="dtypes to also time without a cache ('' = none)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="cached runs: median of this many")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    import torch
    import transformers

    model_mod = import_module("sprints.08_gpt2_assembly.results.model")
    generation = import_module("sprints.10_pretrained_and_generation.results.generation")

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    bandwidth, read_bandwidth = measure_bandwidth()
    print(f"memory bandwidth: copy {bandwidth / 1e9:.1f} GB/s, "
          f"read {read_bandwidth / 1e9:.1f} GB/s")  # fmt: skip

    torch.manual_seed(args.seed)
    hf_cfg = transformers.GPT2Config()  # GPT-2 small: 12 layers, 12 heads, width 768
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with tempfile.TemporaryDirectory() as directory:
        hf.save_pretrained(directory)
        ours = model_mod.GPT.from_pretrained(directory).eval()
    n_params = sum(p.numel() for p in ours.parameters())
    prompt = torch.randint(0, hf_cfg.vocab_size, (1, args.prompt_len))
    n_new = args.new_tokens

    def run_ours(model, cache: bool, n: int):
        return generation.generate_all(model, prompt, n, greedy=True, use_kv_cache=cache)

    def run_hf(model, cache: bool, n: int):
        with torch.inference_mode():
            return model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                use_cache=cache,
                pad_token_id=0,
            )

    rows = []
    uncached_dtypes = {d for d in args.uncached.split(",") if d}
    for dtype_name in args.dtypes.split(","):
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
        ours_d, hf_d = ours.to(dtype), hf.to(dtype)
        weight_bytes = n_params * torch.tensor([], dtype=dtype).element_size()
        ceiling = bandwidth / weight_bytes
        read_ceiling = read_bandwidth / weight_bytes
        print(f"\n{dtype_name}: {weight_bytes / 1e6:.0f} MB of weights per token, ceiling "
              f"{ceiling:.1f} tokens/s (copy), {read_ceiling:.1f} (read)")  # fmt: skip
        outputs, times = {}, {}
        configs = [("ours", True), ("transformers", True)]
        if dtype_name in uncached_dtypes:
            configs += [("ours", False), ("transformers", False)]
        runners = {"ours": (run_ours, ours_d), "transformers": (run_hf, hf_d)}
        for name, cache in configs:  # warm-up: first-call allocations, kernel selection
            runners[name][0](runners[name][1], cache, 8)
        # Interleave the two implementations, so a slow moment of the machine hits both.
        for rep in range(args.repeats):
            for name, cache in configs:
                if not cache and rep > 0:
                    continue  # uncached runs are slow: once
                runner, model = runners[name]
                seconds, out = _time(lambda r=runner, m=model, c=cache: r(m, c, n_new))
                times.setdefault((name, cache), []).append(seconds)
                outputs[(name, cache)] = out
        for name, cache in configs:
            seconds = statistics.median(times[(name, cache)])
            tps = n_new / seconds
            rows.append(
                {
                    "impl": name,
                    "dtype": dtype_name,
                    "kv_cache": cache,
                    "tokens_per_s": round(tps, 2),
                    "seconds": round(seconds, 2),
                    "fraction_of_ceiling": round(tps / ceiling, 3),
                    "ceiling_tokens_per_s": round(ceiling, 1),
                    "fraction_of_read_ceiling": round(tps / read_ceiling, 3),
                    "read_ceiling_tokens_per_s": round(read_ceiling, 1),
                    "all_seconds": [round(t, 2) for t in times[(name, cache)]],
                }
            )
            print(f"  {name:12s} cache={'on ' if cache else 'off'} {tps:6.1f} tokens/s "
                  f"({seconds:5.2f} s; {tps / ceiling:5.1%} of copy ceiling, "
                  f"{tps / read_ceiling:5.1%} of read ceiling)")  # fmt: skip
        ref = outputs[("transformers", True)][0, args.prompt_len :]
        for (name, cache), out in outputs.items():
            same = (out[0, args.prompt_len :] == ref).float().mean().item()
            print(f"  tokens equal to transformers (cached): {name} cache={cache}: {same:.0%}")

    print("\n| implementation | dtype | KV cache | tokens/s | of copy ceiling | of read ceiling |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['impl']} | {r['dtype']} | {'on' if r['kv_cache'] else 'off'} | "
              f"{r['tokens_per_s']:.1f} | {r['fraction_of_ceiling']:.0%} of "
              f"{r['ceiling_tokens_per_s']:.1f} | {r['fraction_of_read_ceiling']:.0%} of "
              f"{r['read_ceiling_tokens_per_s']:.1f} |")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"copy_bytes_per_s": bandwidth, "read_bytes_per_s": read_bandwidth, "rows": rows},
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
