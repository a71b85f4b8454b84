"""Greedy generation speed: this repository's GPT + KV cache vs llama.cpp, at three precisions.

    uv run python -m benchmarks.bench_generate_llama_cpp
    uv run python -m benchmarks.bench_generate_llama_cpp --prompt-lens 4 --new-tokens 128 \\
        --repeats 1

One invocation, the same weights on both sides: transformers builds a random GPT-2 small
(``GPT2LMHeadModel(GPT2Config())``, seeded) and saves it, sprint 8's ``GPT.from_pretrained``
loads that directory, and sprint 10's ``export_gguf`` writes our model as the GGUF file that
llama-cpp-python runs (``uv sync --group gguf-check``). Pairs, ours vs llama.cpp:

    fp32 (float32 weights and activations)      vs  f32 (with an f32 KV cache, as ours)
    bf16 (bfloat16 weights and activations)      vs  f16 (float16 weights and KV cache,
                                                     f32 activations)
    int8 (generate --quantize int8, quantize.py) vs  q8_0 (export_gguf --dtype q8_0: the
                                                     same int8 weights and scales)

Batch 1, greedy, each prompt length x each number of new tokens (prompt + new tokens within
the 1,024-token context), both sides with the same thread count, runs interleaved (ours,
llama.cpp, next precision...) so that a slow moment of the machine hits both; the median of
``--repeats`` runs after a warm-up. tokens/s is end to end: new tokens / (prefill + decoding).

The ceiling: a decoding step reads every weight once, so no implementation can produce more
than ``read bandwidth / bytes of weights`` tokens per second (bandwidth measured in the same
run, ``src.sum()`` over 512 MB); the table gives each figure as a fraction of it. Greedy
agreement is the number of leading new tokens that both sides chose identically (random
weights leave many logits nearly tied, so 16-bit and 8-bit rounding can flip a late choice).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from importlib import import_module
from pathlib import Path

import numpy as np

_devices = import_module("sprints.01_setup_and_basics.results.devices")
_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
_bench_generate = import_module("benchmarks.bench_generate")

PAIRS = {"fp32": "f32", "bf16": "f16", "int8": "q8_0"}  # ours -> llama.cpp's GGUF dtype


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt-lens", default="4,512", help="comma-separated prompt lengths")
    parser.add_argument("--new-tokens", default="128,512", help="comma-separated new tokens")
    parser.add_argument("--precisions", default="fp32,bf16,int8",
                        help="comma-separated: fp32, bf16, int8")
    parser.add_argument("--repeats", type=_arg_types.positive_int, default=3)
    parser.add_argument("--threads", type=_arg_types.positive_int, default=None,
                        help="threads for both (default: torch's, the number of cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench_generate_llama_cpp"),
                        help="report.json goes here")
    return parser


def our_models(directory: str, precisions: list[str]) -> tuple:
    """(the float32 GPT loaded from ``directory``, {precision: our model at it})."""
    import torch

    model_mod = import_module("sprints.08_gpt2_assembly.results.model")
    quantize = import_module("sprints.10_pretrained_and_generation.results.quantize")
    base = model_mod.GPT.from_pretrained(directory).eval()
    models = {}
    for name in precisions:
        if name == "fp32":
            models[name] = base
        elif name == "bf16":
            models[name] = copy.deepcopy(base).to(torch.bfloat16)
        else:
            models[name] = quantize.quantize_int8(copy.deepcopy(base))
    return base, models


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    precisions = [p for p in args.precisions.split(",") if p]
    unknown = set(precisions) - set(PAIRS)
    if unknown:
        raise SystemExit(f"error: unknown precision {sorted(unknown)}; choose from {list(PAIRS)}")
    # torch before llama_cpp: both need an OpenMP runtime named libgomp.so.1, and a process
    # loads only the first one. Imported first, llama_cpp brings the system's libgomp and
    # torch runs on it instead of its own; there, after numba's parallel steps, PyTorch's
    # CPU attention took 115 ms per layer instead of 6 in a 512-token prefill (measured on a
    # 2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no)), which is not what a user of
    # our generate without llama.cpp sees.
    import torch
    import transformers
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise SystemExit("error: llama-cpp-python is missing; install it with "
                         "`uv sync --group gguf-check` (it compiles llama.cpp once)") from None

    generation = import_module("sprints.10_pretrained_and_generation.results.generation")
    export_gguf = import_module("sprints.10_pretrained_and_generation.results.export_gguf")
    quantize = import_module("sprints.10_pretrained_and_generation.results.quantize")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    machine = _devices.describe_cpu()
    print(f"machine: {machine}; torch {torch.__version__}, llama-cpp-python "
          f"{llama_cpp.__version__}, {threads} threads", flush=True)
    _, read_bw = _bench_generate.measure_bandwidth()
    print(f"read bandwidth: {read_bw / 1e9:.1f} GB/s", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench_llama_cpp_"))
    torch.manual_seed(args.seed)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    hf.save_pretrained(work / "hf")
    del hf
    base, ours = our_models(str(work / "hf"), precisions)
    llamas, weight_bytes = {}, {}
    for name in precisions:
        path = export_gguf.write_gguf(base, work / f"model-{PAIRS[name]}.gguf", PAIRS[name])
        # f32 runs with an f32 KV cache, as ours does (llama.cpp's default cache is f16)
        cache_type = {"type_k": 0, "type_v": 0} if name == "fp32" else {}  # GGML_TYPE_F32
        llamas[name] = export_gguf.open_with_llama_cpp(
            path, n_ctx=base.config.block_size, n_threads=threads, n_threads_batch=threads,
            n_batch=512, n_ubatch=512, **cache_type)
        weight_bytes[name] = quantize.weight_bytes(ours[name])
    n_vocab = base.config.vocab_size

    def run_ours(name: str, prompt: list[int], n: int) -> list[int]:
        idx = torch.tensor([prompt])
        out = generation.generate_all(ours[name], idx, n, greedy=True)
        return out[0, len(prompt):].tolist()

    def run_llama(name: str, prompt: list[int], n: int) -> list[int]:
        llm = llamas[name]
        llm.reset()
        llm.eval(prompt)
        tokens = []
        for step in range(n):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
            tokens.append(int(np.argmax(logits)))
            if step + 1 < n:  # like ours: the last token needs no forward pass
                llm.eval([tokens[-1]])
        return tokens

    generator = torch.Generator().manual_seed(args.seed + 1)
    rows = []
    lengths = [(int(p), int(n)) for p in args.prompt_lens.split(",")
               for n in args.new_tokens.split(",")]
    for prompt_len, new_tokens in lengths:
        if prompt_len + new_tokens > base.config.block_size:
            print(f"skip prompt {prompt_len} + {new_tokens} new: beyond the context", flush=True)
            continue
        prompt = torch.randint(0, n_vocab, (prompt_len,), generator=generator).tolist()
        print(f"\n== prompt {prompt_len} tokens, {new_tokens} new ==", flush=True)
        for name in precisions:  # warm-up: allocations, kernel selection, first-touch pages
            run_ours(name, prompt, 4)
            run_llama(name, prompt, 4)
        times: dict = {}
        outputs: dict = {}
        for _ in range(args.repeats):
            for name in precisions:
                for impl, runner in (("ours", run_ours), ("llama.cpp", run_llama)):
                    start = time.perf_counter()
                    outputs[(impl, name)] = runner(name, prompt, new_tokens)
                    times.setdefault((impl, name), []).append(time.perf_counter() - start)
        for name in precisions:
            ceiling = read_bw / weight_bytes[name]
            ours_tps = new_tokens / statistics.median(times[("ours", name)])
            theirs_tps = new_tokens / statistics.median(times[("llama.cpp", name)])
            a, b = outputs[("ours", name)], outputs[("llama.cpp", name)]
            agree = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y),
                         len(a))
            row = {"prompt_len": prompt_len, "new_tokens": new_tokens, "ours": name,
                   "llama_cpp": PAIRS[name], "ours_tokens_per_s": round(ours_tps, 2),
                   "llama_cpp_tokens_per_s": round(theirs_tps, 2),
                   "ratio": round(ours_tps / theirs_tps, 3),
                   "ceiling_tokens_per_s": round(ceiling, 1),
                   "ours_of_ceiling": round(ours_tps / ceiling, 3),
                   "llama_cpp_of_ceiling": round(theirs_tps / ceiling, 3),
                   "weight_mb": round(weight_bytes[name] / 1e6, 1),
                   "greedy_agree_first": agree, "all_seconds": {
                       impl: [round(t, 3) for t in times[(impl, name)]]
                       for impl in ("ours", "llama.cpp")}}
            rows.append(row)
            print(f"  {name} vs {PAIRS[name]:4s}: ours {ours_tps:6.1f} tokens/s, llama.cpp "
                  f"{theirs_tps:6.1f} ({ours_tps / theirs_tps:.2f}x); ceiling {ceiling:6.1f} "
                  f"(ours {ours_tps / ceiling:.0%}, llama.cpp {theirs_tps / ceiling:.0%}); "
                  f"greedy tokens equal for the first {agree}/{new_tokens}", flush=True)
    for llm in llamas.values():
        llm.close()

    print(f"\n{machine}, {threads} threads, read bandwidth {read_bw / 1e9:.1f} GB/s\n")
    print("| prompt | new | ours | llama.cpp | ours tokens/s | llama.cpp tokens/s | ratio "
          "| of ceiling (ours / llama.cpp) | greedy tokens equal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['prompt_len']} | {r['new_tokens']} | {r['ours']} | {r['llama_cpp']} | "
              f"{r['ours_tokens_per_s']:.1f} | {r['llama_cpp_tokens_per_s']:.1f} | "
              f"**{r['ratio']:.2f}x** | {r['ours_of_ceiling']:.0%} / "
              f"{r['llama_cpp_of_ceiling']:.0%} of {r['ceiling_tokens_per_s']:.0f} | "
              f"{r['greedy_agree_first']}/{r['new_tokens']} |")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine, "threads": threads, "read_bytes_per_s": read_bw,
              "torch": torch.__version__, "llama_cpp_python": llama_cpp.__version__,
              "rows": rows}
    (args.out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nreport: {args.out_dir / 'report.json'}")


if __name__ == "__main__":
    main()
