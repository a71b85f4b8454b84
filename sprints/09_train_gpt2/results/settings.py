"""train_gpt2's settings: the command line, the presets, and the checks that run before a model
is built.

Where a value comes from: an explicit flag > ``--model`` (its shape fields) > ``--preset`` >
``DEFAULTS``. Every flag that a preset may set defaults to None here, so "not given" can be
told apart from "given with the default's value".
"""

from __future__ import annotations

import argparse
import math
from importlib import import_module
from pathlib import Path

from . import data as data_lib

_config = import_module("sprints.08_gpt2_assembly.results.config")
_devices = import_module("sprints.01_setup_and_basics.results.devices")
_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")

# Values used when neither a flag nor --preset sets them (a ~30 s character-level run).
DEFAULTS: dict = dict(
    tokenizer=None, model=None, n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0,
    bias=True, activation="gelu_tanh", optimizer="adamw", lr=1e-3, muon_lr=0.02, min_lr=1e-4,
    muon_ns_steps=5, warmup_steps=50,
    lr_decay_steps=None, lr_schedule="cosine", cooldown_fraction=0.5, weight_decay=0.1,
    beta1=0.9, beta2=0.99, grad_clip=1.0,
    grad_accum_steps=1, batch_size=12, max_steps=300, eval_interval=100, eval_start=0,
    eval_batch_size=None, eval_tokens=None, sample_tokens=200, dtype="auto", threads=None,
    loss_chunk=None, checkpoint_interval=None,
)

# --preset: model AND training settings; flags given explicitly override them.
PRESETS: dict[str, dict] = {
    # Measured winner of the CPU speedrun (notes/12_speedrun.md): a small model fed many tokens,
    # 2 layers x 96 (3 heads of 32), batch 64, the exact GELU (torch's tanh-GELU kernel is
    # slow on some CPUs), Muon for the blocks' matrices, high learning rates held, then a
    # linear cooldown to zero (WSD) over the second half of 220 steps, AdamW beta1 0.8, one
    # evaluation at the end, bf16 autocast where the CPU multiplies bf16 in hardware (float32
    # elsewhere).
    "cpu-speedrun": dict(
        tokenizer="char", n_layer=2, n_head=3, n_embd=96, block_size=64, dropout=0.0,
        bias=True, activation="gelu", optimizer="muon", lr=1.5e-2, muon_lr=0.03, min_lr=0.0,
        warmup_steps=20, lr_schedule="wsd", cooldown_fraction=0.5, weight_decay=0.0, beta1=0.8,
        beta2=0.99, batch_size=64, max_steps=220, eval_interval=220, eval_start=220,
        sample_tokens=100,
        dtype="auto",
    ),
    # GPT-2 124M on 10B tokens of FineWeb (or OpenWebText), as build-nanogpt and llm.c
    # train it: 2**19 = 524,288 tokens per step (64 x 1024 x 8 accumulation steps on one
    # GPU; with torchrun pass the same global --batch-size 512 and --grad-accum-steps 1 on 8
    # GPUs), 19,073 steps, AdamW 6e-4 -> 6e-5 over 715 warmup steps + cosine, betas
    # (0.9, 0.95), weight decay 0.1; evaluation on the first 20 x 64 x 1024 validation tokens.
    "gpt2-124m": dict(
        tokenizer="gpt2", n_layer=12, n_head=12, n_embd=768, block_size=1024, dropout=0.0,
        bias=True, optimizer="adamw", lr=6e-4, min_lr=6e-5, warmup_steps=715,
        lr_decay_steps=19073, weight_decay=0.1, beta1=0.9, beta2=0.95, grad_clip=1.0,
        batch_size=64, grad_accum_steps=8, max_steps=19073, eval_interval=250,
        eval_tokens=20 * 64 * 1024, sample_tokens=64, dtype="auto", checkpoint_interval=1000,
    ),
    # nanoGPT's recommended CPU recipe for shakespeare_char (config/train_shakespeare_char.py
    # plus the README's CPU overrides): the reference the speedrun is measured against.
    # nanoGPT's MLP uses nn.GELU(), the exact GELU.
    "nanogpt-cpu": dict(
        tokenizer="char", n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0,
        bias=False, activation="gelu", optimizer="adamw", lr=1e-3, min_lr=1e-4, warmup_steps=100,
        lr_decay_steps=2000, weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0,
        batch_size=12, max_steps=2000, eval_interval=2000, sample_tokens=100, dtype="float32",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train sprint 8's GPT on a text file (character-level or GPT-2 BPE).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = DEFAULTS
    g = p.add_argument_group("data")
    g.add_argument("--data-file", type=Path, default=None,
                   help="UTF-8 text to train on; without it Tiny Shakespeare is downloaded")
    g.add_argument("--data-dir", type=Path, default=None,
                   help="a directory prepared by prepare_data.py (uint16 shards + "
                        "manifest.json), memory-mapped: for corpora of any size. Its "
                        "manifest sets the tokenizer and the validation split")
    g.add_argument("--data-url", default=data_lib.TINY_SHAKESPEARE_URL,
                   help="where to download the default text from")
    g.add_argument("--download-dir", type=Path, default=data_lib.DEFAULT_DATA_FILE.parent,
                   help="directory for the downloaded text")
    g.add_argument("--cache-dir", type=Path, default=Path("data") / "cache",
                   help="token-id cache (uint16 .npy keyed by tokenizer + text hash)")
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument("--tokenizer", type=_tokenizer.tokenizer_arg, default=None,
                   help="gpt2 | char | path of a tokenizer.json byte-level BPE (the model's "
                        "vocabulary is its size padded to a multiple of 64). Default: char, "
                        "gpt2 when --init-from is a GPT-2, the checkpoint's own tokenizer "
                        "when --init-from or --resume is a checkpoint")
    g = p.add_argument_group("model")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="model + training settings; explicit flags override them")
    g.add_argument("--model", default=None,
                   help="sprint 8 GPTConfig preset (tiny, small-cpu, ...); its shape beats "
                        "--preset's, explicit --n-layer etc. beat it")
    g.add_argument("--n-layer", type=int, default=None, help=f"default {d['n_layer']}")
    g.add_argument("--n-head", type=int, default=None, help=f"default {d['n_head']}")
    g.add_argument("--n-embd", type=int, default=None, help=f"default {d['n_embd']}")
    g.add_argument("--block-size", type=int, default=None, help=f"default {d['block_size']}")
    g.add_argument("--dropout", type=float, default=None, help=f"default {d['dropout']}")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=None,
                   help="biases in Linear/LayerNorm (default on, like GPT-2)")
    g.add_argument("--activation", choices=["gelu_tanh", "gelu"], default=None,
                   help="the MLP's GELU: gelu_tanh (GPT-2's tanh approximation, default) or "
                        "gelu (exact; 4-5x faster on CPUs with a slow tanh kernel)")
    g.add_argument("--init-from", default="scratch",
                   help="scratch | gpt2 (or gpt2-medium, ...) | Hugging Face directory | "
                        "checkpoint .pt file")
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=["adamw", "muon"], default=None,
                   help="muon: Muon (torch.optim.Muon's update, batched) on the blocks' "
                        "matrices, AdamW on the rest")
    g.add_argument("--lr", type=float, default=None, help=f"AdamW peak lr, default {d['lr']}")
    g.add_argument("--muon-lr", type=float, default=None, help=f"default {d['muon_lr']}")
    g.add_argument("--muon-ns-steps", type=int, default=None,
                   help="Newton-Schulz iterations per Muon update (fewer: cheaper, rougher "
                        f"orthogonalisation), default {d['muon_ns_steps']}")
    g.add_argument("--min-lr", type=float, default=None, help=f"default {d['min_lr']}")
    g.add_argument("--warmup-steps", type=int, default=None,
                   help=f"default {d['warmup_steps']}")
    g.add_argument("--lr-decay-steps", type=int, default=None,
                   help="step where the decay reaches --min-lr (default --max-steps)")
    g.add_argument("--lr-schedule", choices=["cosine", "wsd"], default=None,
                   help="after warmup: cosine decay, or wsd (constant, then a linear "
                        f"cooldown); default {d['lr_schedule']}")
    g.add_argument("--cooldown-fraction", type=float, default=None,
                   help="wsd: share of the decay steps spent cooling down linearly to "
                        f"--min-lr (default {d['cooldown_fraction']})")
    g.add_argument("--weight-decay", type=float, default=None,
                   help=f"on 2-D weights only, default {d['weight_decay']}")
    g.add_argument("--beta1", type=float, default=None)
    g.add_argument("--beta2", type=float, default=None)
    g.add_argument("--grad-clip", type=float, default=None, help="max grad norm, 0 = off")
    g.add_argument("--grad-accum-steps", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None,
                   help=f"sequences per micro-step, summed over all processes "
                        f"(default {d['batch_size']})")
    g.add_argument("--max-steps", type=int, default=None, help=f"default {d['max_steps']}")
    g.add_argument("--seed", type=int, default=1337)
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-interval", type=int, default=None,
                   help=f"steps between evaluations on the whole validation split "
                        f"(default {d['eval_interval']}); the last step always evaluates")
    g.add_argument("--eval-start", type=int, default=None,
                   help="no evaluation before this step (evaluation costs time)")
    g.add_argument("--eval-tokens", type=int, default=None,
                   help="evaluate on the first N tokens of the validation split only (the "
                        "same N every time; for big corpora). Default: all of it")
    g.add_argument("--eval-batch-size", type=int, default=None,
                   help="windows per evaluation forward (default: the training micro-batch, "
                        "--batch-size / processes)")
    g.add_argument("--sample-tokens", type=int, default=None,
                   help="length of the text sample printed at each evaluation (0 = none)")
    g.add_argument("--target-val-loss", type=float, default=None,
                   help="stop as soon as the validation loss is at or below this")
    g.add_argument("--hellaswag-every", type=int, default=None,
                   help="score HellaSwag (hellaswag.py) every N steps and at the last step, "
                        "logged as hellaswag/acc and hellaswag/acc_norm (default: never)")
    g.add_argument("--hellaswag-file", type=Path, default=None,
                   help="local hellaswag_val.jsonl; without it the official file is "
                        "downloaded into data/hellaswag/")
    g.add_argument("--hellaswag-items", type=int, default=None,
                   help="score only the first N items (default: all 10,042; a CPU scores "
                        "GPT-2 small at about 2-5 items/s)")
    g.add_argument("--out-dir", type=Path, default=Path("runs") / "train_gpt2")
    g.add_argument("--checkpoint-interval", type=int, default=None,
                   help="steps between 'latest' checkpoints (default: at each evaluation)")
    g.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/latest.pt (same loss trajectory as no stop)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    g = p.add_argument_group("speed")
    g.add_argument("--device", choices=_devices.DEVICE_CHOICES, default="auto",
                   help="auto: CUDA, else Apple's MPS, else the CPU")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default=None,
                   help="bfloat16 = autocast. auto: bfloat16 on CUDA GPUs that support it "
                        "and on CPUs with bf16 matmul hardware (AMX or AVX-512 BF16), "
                        "float32 otherwise (measured: README)")
    g.add_argument("--parallel", choices=["ddp", "fsdp"], default="ddp",
                   help="with several processes (torchrun): ddp copies the model to every "
                        "process; fsdp (FSDP2) shards weights, gradients and AdamW state "
                        "across them, for models that do not fit one device")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: cores / processes on this machine)")
    g.add_argument("--loss-chunk", type=int, default=None,
                   help="rows per chunk of the fused output-layer + cross-entropy; 0 = the "
                        "model's plain forward (default: 2048 if vocab >= 8192 else 0)")
    return p


def resolve_settings(args: argparse.Namespace) -> argparse.Namespace:
    """explicit flag > --model (its shape fields) > --preset > DEFAULTS.

    ``--model`` is itself a flag given explicitly, so its fields beat the preset's: with
    ``--preset cpu-speedrun --model medium-cpu`` the speedrun's training settings train the
    medium-cpu shape; ``--n-layer`` and the like still beat ``--model``.
    """
    preset = PRESETS.get(args.preset, {}) if args.preset else {}
    model_preset = {}
    if args.model is not None:
        if args.model not in _config.PRESETS:
            raise ValueError(f"unknown --model {args.model!r}; choose one of "
                             f"{sorted(_config.PRESETS)}")
        model_preset = _config.PRESETS[args.model]
    for key, default in DEFAULTS.items():
        if getattr(args, key, None) is None:
            value = model_preset.get(key, preset.get(key, default))
            setattr(args, key, value)
    return args


def check_settings(args: argparse.Namespace, world_size: int) -> None:
    """Hyperparameters that cannot work, caught before any model is built."""
    problems = []
    if args.n_head < 1 or args.n_embd < 1 or args.n_embd % args.n_head != 0:
        problems.append(f"--n-embd {args.n_embd} must be divisible by --n-head {args.n_head} "
                        "(each head gets n_embd / n_head dimensions)")
    at_least = {key: 1 for key in ("block_size", "batch_size", "max_steps", "grad_accum_steps",
                                   "eval_interval", "checkpoint_interval", "lr_decay_steps",
                                   "eval_batch_size", "eval_tokens", "threads", "muon_ns_steps",
                                   "hellaswag_every",
                                   "hellaswag_items")}
    at_least.update({key: 0 for key in ("warmup_steps", "eval_start", "sample_tokens",
                                        "weight_decay", "grad_clip", "muon_lr", "loss_chunk")})
    for key, low in at_least.items():
        value = getattr(args, key, None)
        if value is not None and value < low:
            problems.append(f"--{key.replace('_', '-')} must be >= {low}, got {value}")
    for key in ("lr", "muon_lr", "min_lr", "weight_decay", "beta1", "beta2", "grad_clip",
                "dropout", "target_val_loss", "cooldown_fraction"):
        value = getattr(args, key, None)
        if value is not None and not math.isfinite(value):  # NaN passes every comparison
            problems.append(f"--{key.replace('_', '-')} must be a finite number, got {value}")
    if args.seed < 0:
        problems.append(f"--seed must be >= 0 (it seeds NumPy's batch sampler), got {args.seed}")
    if args.lr_decay_steps is not None and args.lr_decay_steps < args.warmup_steps:
        problems.append(f"--lr-decay-steps {args.lr_decay_steps} ends the decay before "
                        f"the {args.warmup_steps} warmup steps end; make it >= --warmup-steps")
    if not (0.0 <= args.beta1 < 1.0 and 0.0 <= args.beta2 < 1.0):
        problems.append(f"--beta1 and --beta2 must be in [0, 1), got {args.beta1}, {args.beta2}")
    if args.batch_size % world_size != 0:
        problems.append(f"--batch-size {args.batch_size} is the global batch and must be "
                        f"divisible by the {world_size} processes")
    if not 0.0 < args.cooldown_fraction <= 1.0:
        problems.append(f"--cooldown-fraction must be in (0, 1], got {args.cooldown_fraction}")
    if not 0.0 <= args.dropout < 1.0:
        problems.append(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.lr <= 0 or args.min_lr < 0 or args.min_lr > args.lr:
        problems.append(f"need 0 <= --min-lr ({args.min_lr}) <= --lr ({args.lr}) and --lr > 0")
    if args.data_dir is not None and args.data_file is not None:
        problems.append("--data-dir and --data-file both name the training data; pass one")
    if args.parallel == "fsdp" and args.optimizer == "muon":
        problems.append("--parallel fsdp needs --optimizer adamw: Muon orthogonalises each "
                        "whole matrix, and FSDP leaves only a shard of it on each process")
    if problems:
        raise ValueError("; ".join(problems))


def plain_args(args: argparse.Namespace) -> dict:
    """The settings as JSON-friendly values (stored in checkpoints)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
