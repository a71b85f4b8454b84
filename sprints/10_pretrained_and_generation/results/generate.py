"""Generate text from a trained checkpoint or from pretrained GPT-2 weights, streamed.

    uv run python -m sprints.10_pretrained_and_generation.results.generate \\
        --init-from gpt2 --prompt "Hello, I'm a language model," --max-new-tokens 50

``--checkpoint PATH`` loads a checkpoint written by sprint 9's train_gpt2.py (config,
weights and tokenizer); ``--init-from gpt2`` loads OpenAI's GPT-2 through sprint 8's
``GPT.from_pretrained`` (the Hugging Face hub when online, its cache otherwise), and
``--init-from DIR`` a local Hugging Face GPT-2 directory (config.json + model.safetensors).
Tokens are printed as soon as they are chosen.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from importlib import import_module
from pathlib import Path

_devices = import_module("sprints.01_setup_and_basics.results.devices")

# Where each weight dtype is offered: float16 matmuls have no fast CPU kernels (and CPU
# half-precision ops are slow or missing), so only the GPUs get it.
DTYPE_DEVICES = {"float32": ("cpu", "cuda", "mps"), "bfloat16": ("cpu", "cuda", "mps"),
                 "float16": ("cuda", "mps")}

HOW_TO_GET_WEIGHTS = """\
To get GPT-2's weights on a machine without internet access, download them on one that
has it, e.g.
    hf download gpt2 config.json model.safetensors --local-dir gpt2-local
(or, in Python: transformers.GPT2LMHeadModel.from_pretrained("gpt2").save_pretrained("gpt2-local")),
copy the directory over and pass it: --init-from gpt2-local"""

USAGE_HINT = f"""\
tell me which model to sample from:
  --checkpoint PATH   a checkpoint written by sprint 9's train_gpt2.py (e.g. runs/.../best.pt)
  --init-from gpt2    OpenAI's GPT-2 (needs the Hugging Face hub, or its local cache)
  --init-from DIR     a local Hugging Face GPT-2 directory (config.json + model.safetensors)

{HOW_TO_GET_WEIGHTS}"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Generate text with a GPT (KV cache, greedy/temperature/top-k/top-p), "
        "streamed to the terminal.",
        epilog=USAGE_HINT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="checkpoint file written by train_gpt2.py")
    source.add_argument(
        "--init-from", help="'gpt2' (or another hub name) or a local Hugging Face directory"
    )
    parser.add_argument("--prompt", default="\n", help="text to continue (default: newline)")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument(
        "--temperature", type=float, default=0.8, help="0 means greedy; <1 sharper, >1 flatter"
    )
    parser.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens")
    parser.add_argument(
        "--top-p", type=float, default=None, help="keep the smallest set with probability >= p"
    )
    parser.add_argument("--greedy", action="store_true", help="always take the argmax")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument(
        "--no-kv-cache", action="store_true", help="rerun the whole context every step"
    )
    parser.add_argument(
        "--refill-tokens",
        type=int,
        default=None,
        help="with the KV cache, once the context window is full, refill the cache from this "
        "many last tokens (1..block size; default block size // 2). Equal to the block size, "
        "the cached path slides its window exactly like --no-kv-cache",
    )
    parser.add_argument(
        "--dtype",
        choices=list(DTYPE_DEVICES),
        default="float32",
        help="weight dtype: float32 and bfloat16 on every device, float16 on cuda and mps only",
    )
    parser.add_argument(
        "--quantize",
        choices=["none", "int8"],
        default="none",
        help="int8: the weight matrices and the token embedding as 8-bit integers with a "
        "scale per row (quantize.py), a quarter of float32's memory traffic per token; "
        "--dtype then sets the activations' dtype",
    )
    parser.add_argument(
        "--device",
        choices=_devices.DEVICE_CHOICES,
        default="auto",
        help="auto takes cuda, then mps, then cpu; a device that is not there is an error",
    )
    parser.add_argument(
        "--stop-at-eot", action="store_true", help="stop a sample at <|endoftext|> (GPT-2)"
    )
    return parser


def _sprint8(name: str):
    return import_module(f"sprints.08_gpt2_assembly.results.{name}")


def tokenizer_from_checkpoint(ckpt: dict):
    """The tokenizer a checkpoint was trained with (sprint 8's ``tokenizer_from_record``),
    looked up in ``ckpt["tokenizer"]`` and ``ckpt["extra"]["tokenizer"]``."""
    extra = ckpt.get("extra") or {}
    info = ckpt.get("tokenizer", extra.get("tokenizer") if isinstance(extra, dict) else None)
    return _sprint8("tokenizer").tokenizer_from_record(info)


def load_from_checkpoint(path: str):
    """Sprint 8 rebuilds the model from the checkpoint's config and checks the weights fit."""
    model, ckpt = _sprint8("model").GPT.from_checkpoint(path)
    return model, tokenizer_from_checkpoint(ckpt)


def load_from_pretrained(name_or_path: str):
    model_mod, tok_mod = _sprint8("model"), _sprint8("tokenizer")
    looks_like_path = os.sep in name_or_path or name_or_path.startswith(".")
    if looks_like_path and not Path(name_or_path).is_dir():
        raise FileNotFoundError(f"--init-from: no directory {name_or_path}\n\n{HOW_TO_GET_WEIGHTS}")
    try:
        model = model_mod.GPT.from_pretrained(name_or_path)
    except (OSError, ValueError, RuntimeError) as error:
        raise RuntimeError(
            f"could not load weights for --init-from {name_or_path}: {error}\n\n"
            f"{HOW_TO_GET_WEIGHTS}"
        ) from error
    # A local directory may carry its own vocabulary files; otherwise GPT-2's bundled one.
    tokenizer = tok_mod.gpt2_tokenizer_for(name_or_path)
    if model.config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"the model's vocabulary ({model.config.vocab_size}) is smaller than GPT-2's "
            f"tokenizer ({tokenizer.vocab_size}); use a checkpoint with its own tokenizer"
        )
    return model, tokenizer


def resolve_device(parser: argparse.ArgumentParser, name: str, dtype: str):
    """The torch.device for ``--device`` (sprint 1's ``pick_device``: auto = cuda, then mps,
    then cpu); a missing device or a dtype that device does not offer is a usage error."""
    try:
        device = _devices.pick_device(name)
    except _devices.DeviceError as error:
        parser.error(str(error))
    if device.type not in DTYPE_DEVICES[dtype]:
        parser.error(
            f"--dtype {dtype} runs on {' and '.join(DTYPE_DEVICES[dtype])} only, and this run "
            f"is on {device.type}; use --dtype bfloat16 or float32 there"
        )
    return device


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint is None and args.init_from is None:
        parser.print_usage(sys.stderr)
        print(f"\n{USAGE_HINT}", file=sys.stderr)
        raise SystemExit(2)
    if args.max_new_tokens < 0 or args.num_samples < 1:
        parser.error("--max-new-tokens must be >= 0 and --num-samples >= 1")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        parser.error(
            f"--temperature must be a finite number >= 0 (0 means greedy), got {args.temperature}"
        )
    if args.top_k is not None and args.top_k < 1:
        parser.error("--top-k must be >= 1")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        parser.error("--top-p must be in (0, 1]")
    if args.refill_tokens is not None and args.refill_tokens < 1:
        parser.error("--refill-tokens must be >= 1 (and at most the model's block size)")

    import torch  # heavy imports after argument parsing, so --help stays instant

    from .generation import TextStreamer, generate

    device = resolve_device(parser, args.device, args.dtype)
    try:
        if args.checkpoint is not None:
            model, tokenizer = load_from_checkpoint(args.checkpoint)
        else:
            model, tokenizer = load_from_pretrained(args.init_from)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        args.dtype
    ]
    model = model.to(device=device, dtype=dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())  # before int8 turns some to buffers
    if args.quantize == "int8":
        from .quantize import quantize_int8

        model = quantize_int8(model, dtype)
    block_size = model.config.block_size
    if args.refill_tokens is not None and not 1 <= args.refill_tokens <= block_size:
        parser.error(
            f"--refill-tokens must be in 1..{block_size} (this model's block size), "
            f"got {args.refill_tokens}"
        )

    try:
        prompt_ids = tokenizer.encode(args.prompt) if args.prompt else []
    except ValueError as error:  # e.g. a character the char vocabulary never saw
        print(
            f"error: --prompt cannot be encoded with this model's tokenizer: {error}\n"
            "Write the prompt with characters from the model's training text.",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    if not prompt_ids:
        if tokenizer.eot_token_id is None:
            parser.error("--prompt must not be empty for this tokenizer")
        prompt_ids = [tokenizer.eot_token_id]  # GPT-2's "start of a new document"
    if max(prompt_ids) >= model.config.vocab_size:
        parser.error("the prompt has token ids beyond the model's vocabulary")
    idx = torch.tensor([prompt_ids], dtype=torch.long, device=device)  # (1, T)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    eos = tokenizer.eot_token_id if args.stop_at_eot else None

    refill = block_size // 2 if args.refill_tokens is None else args.refill_tokens
    cache_info = "off" if args.no_kv_cache else f"on (refill {refill} of {block_size} tokens)"
    print(
        f"# {model.config.n_layer} layers, width {model.config.n_embd}, "
        f"{n_params:,} parameters, "
        f"{str(next(model.parameters()).dtype).removeprefix('torch.')}"
        f"{', int8 weights' if args.quantize == 'int8' else ''}, "
        f"KV cache {cache_info}, "
        f"{'greedy' if args.greedy or args.temperature == 0 else 'sampling'}",
        file=sys.stderr,
    )
    for sample in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {sample + 1}/{args.num_samples} ---", flush=True)
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
        streamer = TextStreamer(tokenizer.decode)
        start, count = time.perf_counter(), 0
        tokens = generate(
            model,
            idx,
            args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            greedy=args.greedy,
            generator=generator,
            use_kv_cache=not args.no_kv_cache,
            refill_tokens=args.refill_tokens,
            eos_token_id=eos,
            allowed_tokens=tokenizer.vocab_size,  # never a padded embedding row
        )
        for token in tokens:
            count += 1
            piece = streamer.push(int(token[0]))
            if piece:
                sys.stdout.write(piece)
                sys.stdout.flush()  # stream: show each token as soon as it exists
        sys.stdout.write(streamer.flush() + "\n")
        sys.stdout.flush()
        elapsed = time.perf_counter() - start
        print(
            f"# {count} tokens in {elapsed:.2f} s ({count / max(elapsed, 1e-9):.1f} tokens/s)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
