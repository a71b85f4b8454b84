"""Train a GPT (sprint 8's model) on a text file: the project's main training tool.

    uv run python -m sprints.09_train_gpt2.results.train_gpt2 \\
        --data-file /path/to/input.txt --preset cpu-speedrun --target-val-loss 1.88

Data (``data.py``) -> model (sprint 8 ``GPT``, from scratch, Hugging Face GPT-2 or a
checkpoint) -> AdamW/Muon with warmup + cosine (``optimizers.py``, ``lr_schedule.py``) ->
loss (``lm_loss.py``) -> evaluation over the WHOLE validation split, text samples,
TensorBoard, ``latest``/``best`` checkpoints, ``summary.json``. Data parallel under torchrun.
"""

from __future__ import annotations

import time

_T_IMPORT = time.time()  # before torch's import: the fallback "process start"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from importlib import import_module  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from . import data as data_lib  # noqa: E402
from .lm_loss import LanguageModelLoss, linear_cross_entropy  # noqa: E402
from .lr_schedule import lr_at  # noqa: E402
from .optimizers import build_optimizer  # noqa: E402

_config = import_module("sprints.08_gpt2_assembly.results.config")
_model = import_module("sprints.08_gpt2_assembly.results.model")
_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")
_utils = import_module("sprints.08_gpt2_assembly.results.utils")
GPTConfig, GPT = _config.GPTConfig, _model.GPT
CheckpointError = _utils.CheckpointError

# Testing hook: TRAIN_GPT2_INJECT_NAN_AT_STEP=k turns the loss of optimizer step k into NaN
# (k:inf into +infinity), to check that a diverged run stops and keeps its last good checkpoint.
NAN_HOOK_ENV = "TRAIN_GPT2_INJECT_NAN_AT_STEP"

# Values used when neither a flag nor --preset sets them (a ~30 s character-level run).
DEFAULTS: dict = dict(
    tokenizer=None, model=None, n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0,
    bias=True, optimizer="adamw", lr=1e-3, muon_lr=0.02, min_lr=1e-4, warmup_steps=50,
    lr_decay_steps=None, weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0,
    grad_accum_steps=1, batch_size=12, max_steps=300, eval_interval=100, eval_start=0,
    eval_batch_size=None, sample_tokens=200, dtype="auto", threads=None, loss_chunk=None,
    checkpoint_interval=None,
)

# --preset: model AND training settings; flags given explicitly override them.
PRESETS: dict[str, dict] = {
    # Measured winner of the CPU speedrun (notes/speedrun.md): nanoGPT's model shape, Muon for
    # the blocks' matrices, twice nanoGPT's batch, high learning rates decayed to zero over a
    # step budget that fits 45 s, one evaluation at the end, float32.
    "cpu-speedrun": dict(
        tokenizer="char", n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0,
        bias=True, optimizer="muon", lr=1e-2, muon_lr=0.03, min_lr=0.0, warmup_steps=20,
        weight_decay=0.0, beta2=0.99, batch_size=24, max_steps=350, eval_interval=350,
        eval_start=350, sample_tokens=100, dtype="float32",
    ),
    # nanoGPT's recommended CPU recipe for shakespeare_char (config/train_shakespeare_char.py
    # plus the README's CPU overrides): the reference the speedrun is measured against.
    "nanogpt-cpu": dict(
        tokenizer="char", n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0,
        bias=False, optimizer="adamw", lr=1e-3, min_lr=1e-4, warmup_steps=100,
        lr_decay_steps=2000, weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0,
        batch_size=12, max_steps=2000, eval_interval=2000, sample_tokens=100, dtype="float32",
    ),
}


class TrainingError(RuntimeError):
    """A run that had to stop (NaN loss, failed save); the message says what survived."""


def process_start_time() -> float:
    """Wall-clock time at which this process started (Linux /proc), else this module's import."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _T_IMPORT


# ----- command line ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train sprint 8's GPT on a text file (character-level or GPT-2 BPE).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = DEFAULTS
    g = p.add_argument_group("data")
    g.add_argument("--data-file", type=Path, default=None,
                   help="UTF-8 text to train on; without it Tiny Shakespeare is downloaded")
    g.add_argument("--data-url", default=data_lib.TINY_SHAKESPEARE_URL,
                   help="where to download the default text from")
    g.add_argument("--data-dir", type=Path, default=data_lib.DEFAULT_DATA_FILE.parent,
                   help="directory for the downloaded text")
    g.add_argument("--cache-dir", type=Path, default=Path("data") / "cache",
                   help="token-id cache (uint16 .npy keyed by tokenizer + text hash)")
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument("--tokenizer", choices=["gpt2", "char"], default=None,
                   help="default: char, or gpt2 when --init-from is a GPT-2")
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
    g.add_argument("--init-from", default="scratch",
                   help="scratch | gpt2 (or gpt2-medium, ...) | Hugging Face directory | "
                        "checkpoint .pt file")
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=["adamw", "muon"], default=None,
                   help="muon: Muon (torch.optim.Muon's update, batched) on the blocks' "
                        "matrices, AdamW on the rest")
    g.add_argument("--lr", type=float, default=None, help=f"AdamW peak lr, default {d['lr']}")
    g.add_argument("--muon-lr", type=float, default=None, help=f"default {d['muon_lr']}")
    g.add_argument("--min-lr", type=float, default=None, help=f"default {d['min_lr']}")
    g.add_argument("--warmup-steps", type=int, default=None,
                   help=f"default {d['warmup_steps']}")
    g.add_argument("--lr-decay-steps", type=int, default=None,
                   help="step where cosine decay reaches --min-lr (default --max-steps)")
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
    g.add_argument("--eval-batch-size", type=int, default=None,
                   help="windows per evaluation forward (default: about 32k tokens)")
    g.add_argument("--sample-tokens", type=int, default=None,
                   help="length of the text sample printed at each evaluation (0 = none)")
    g.add_argument("--target-val-loss", type=float, default=None,
                   help="stop as soon as the validation loss is at or below this")
    g.add_argument("--out-dir", type=Path, default=Path("runs") / "train_gpt2")
    g.add_argument("--checkpoint-interval", type=int, default=None,
                   help="steps between 'latest' checkpoints (default: at each evaluation)")
    g.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/latest.pt (same loss trajectory as no stop)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    g = p.add_argument_group("speed")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default=None,
                   help="auto: bfloat16 autocast on CUDA, and on CPU for width >= 256 "
                        "(measured faster there, slower below)")
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
                                   "eval_batch_size", "threads")}
    at_least.update({key: 0 for key in ("warmup_steps", "eval_start", "sample_tokens",
                                        "weight_decay", "grad_clip", "muon_lr", "loss_chunk")})
    for key, low in at_least.items():
        value = getattr(args, key, None)
        if value is not None and value < low:
            problems.append(f"--{key.replace('_', '-')} must be >= {low}, got {value}")
    for key in ("lr", "muon_lr", "min_lr", "weight_decay", "beta1", "beta2", "grad_clip",
                "dropout", "target_val_loss"):
        value = getattr(args, key, None)
        if value is not None and not math.isfinite(value):  # NaN passes every comparison
            problems.append(f"--{key.replace('_', '-')} must be a finite number, got {value}")
    if args.seed < 0:
        problems.append(f"--seed must be >= 0 (it seeds NumPy's batch sampler), got {args.seed}")
    if args.lr_decay_steps is not None and args.lr_decay_steps < args.warmup_steps:
        problems.append(f"--lr-decay-steps {args.lr_decay_steps} ends the cosine decay before "
                        f"the {args.warmup_steps} warmup steps end; make it >= --warmup-steps")
    if not (0.0 <= args.beta1 < 1.0 and 0.0 <= args.beta2 < 1.0):
        problems.append(f"--beta1 and --beta2 must be in [0, 1), got {args.beta1}, {args.beta2}")
    if args.batch_size % world_size != 0:
        problems.append(f"--batch-size {args.batch_size} is the global batch and must be "
                        f"divisible by the {world_size} processes")
    if not 0.0 <= args.dropout < 1.0:
        problems.append(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.lr <= 0 or args.min_lr < 0 or args.min_lr > args.lr:
        problems.append(f"need 0 <= --min-lr ({args.min_lr}) <= --lr ({args.lr}) and --lr > 0")
    if problems:
        raise ValueError("; ".join(problems))


# ----- devices and precision -------------------------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def pick_dtype(name: str, device: torch.device, n_embd: int) -> torch.dtype:
    """auto: bf16 autocast where it measured faster. On this CPU (AMX) bf16 matmuls are ~3.5x
    fp32 at large sizes, but for width 128 the casts cost more than they save (README)."""
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if n_embd >= 256 else torch.float32


# ----- model -----------------------------------------------------------------------------------
def is_pretrained_name(init_from: str) -> bool:
    return init_from.startswith("gpt2") and not Path(init_from).exists()


def build_model(args, vocab_size: int) -> tuple[torch.nn.Module, dict | None]:
    """Returns (model, checkpoint dict if --init-from was a checkpoint)."""
    src = args.init_from
    if src == "scratch":
        cfg = GPTConfig(vocab_size=vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                        n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
                        bias=args.bias)
        return GPT(cfg), None
    if is_pretrained_name(src) or Path(src).is_dir():
        try:
            model = GPT.from_pretrained(src, dropout=args.dropout)
        except (OSError, ValueError) as error:
            raise ValueError(f"--init-from {src}: could not load GPT-2 weights ({error}); "
                             "pass a local Hugging Face GPT-2 directory") from error
        return model, None
    if Path(src).is_file():
        model, ckpt = GPT.from_checkpoint(src)
        return model, ckpt
    raise ValueError(f"--init-from {src!r} is neither 'scratch', a GPT-2 name, a directory "
                     "nor a checkpoint file")


# ----- evaluation ------------------------------------------------------------------------------
@torch.inference_mode()
def evaluate(loss_module: LanguageModelLoss, windows, batch_size: int, device, dtype,
             rank: int = 0, world_size: int = 1) -> float:
    """Mean next-token loss over EVERY token of the validation split (non-overlapping windows);
    each rank takes every world_size-th batch and the sums are all-reduced."""
    model = loss_module.model
    model.eval()
    x_all, y_all, tail = windows
    batches = [(x_all[i:i + batch_size], y_all[i:i + batch_size])
               for i in range(0, len(x_all), batch_size)]
    if tail is not None:
        batches.append(tail)
    total = torch.zeros(2, dtype=torch.float64)
    for x, y in batches[rank::world_size]:
        x, y = x.to(device), y.to(device)
        with autocast(device, dtype):
            if loss_module.chunk_size > 0:
                h = model.hidden_states(x)  # (b, T, C)
                loss = linear_cross_entropy(h.reshape(-1, h.size(-1)), model.lm_head.weight,
                                            y.reshape(-1), loss_module.chunk_size)
            else:
                _, loss = model(x, y)
        total += torch.tensor([loss.double().item() * y.numel(), y.numel()], dtype=torch.float64)
    if world_size > 1:
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()


@torch.inference_mode()
def sample_text(model, tokenizer, n_tokens: int, seed: int, device, prompt: str = "\n") -> str:
    """Ancestral sampling (temperature 1, top-k 40), with its own RNG so training's is untouched."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    try:
        ids = tokenizer.encode(prompt)
    except ValueError:
        ids = [0]
    idx = torch.tensor([ids or [0]], dtype=torch.long, device=device)
    for _ in range(n_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])
        logits = logits[:, -1, :].float()
        top = torch.topk(logits, min(40, logits.size(-1)))
        logits[logits < top.values[:, -1:]] = -float("inf")
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
        idx = torch.cat([idx, nxt], dim=1)
    model.train()
    return tokenizer.decode(idx[0, len(ids or [0]):].tolist())


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# ----- checkpoints -----------------------------------------------------------------------------
def tokenizer_state(tokenizer) -> dict:
    return tokenizer.to_dict() if hasattr(tokenizer, "to_dict") else {"type": tokenizer.name}


def save_state(path: Path, model, optimizer, step: int, tokens_seen: int, best_val: float,
               tokenizer, args, elapsed: float, rank_rngs: list | None = None) -> None:
    """Atomic (sprint 8's save_checkpoint: temp file + os.replace). ``rank_rngs``: every
    process's RNG states under torchrun (index = rank), None for a single process."""
    extra = {"tokenizer": tokenizer_state(tokenizer), "best_val_loss": best_val,
             "elapsed_s": elapsed, "args": plain_args(args)}
    if rank_rngs is not None:
        extra["rank_rng_states"] = rank_rngs
    _utils.save_checkpoint(
        path, model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=None,
        step=step, config=model.config.to_dict(),
        data_position={"step": step, "tokens_seen": tokens_seen, "seed": args.seed},
        rng_states=rank_rngs[0] if rank_rngs is not None else _utils.rng_states(),
        extra=extra,
    )


def plain_args(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def load_text_and_tokenizer(args, ckpt_tokenizer: dict | None, rank: int):
    if args.data_file is None:
        path = args.data_dir / "input.txt"
        if rank == 0:
            data_lib.download(args.data_url, path)
        if dist.is_initialized():
            dist.barrier()
    else:
        path = args.data_file
    text = data_lib.read_text(path)
    train_text, val_text = data_lib.split_text(text, args.val_fraction)
    if args.tokenizer == "gpt2":
        tokenizer = _tokenizer.get_tokenizer("gpt2")
    elif ckpt_tokenizer is not None and ckpt_tokenizer.get("type") == "char":
        tokenizer = _tokenizer.CharTokenizer.from_dict(ckpt_tokenizer)
        unknown = set(text) - set(tokenizer.chars)
        if unknown:
            raise ValueError(f"the checkpoint's character vocabulary lacks {sorted(unknown)[:10]}"
                             " found in this data file; use the text it was trained on")
    else:
        tokenizer = _tokenizer.get_tokenizer("char", text=text)
    cache = args.cache_dir if rank == 0 else None
    tokens = data_lib.TokenData(train=data_lib.encode_cached(tokenizer, train_text, cache),
                                val=data_lib.encode_cached(tokenizer, val_text, cache))
    return tokenizer, tokens


# ----- the run ---------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> dict:
    t_start = process_start_time()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolve_settings(args)
    device = pick_device(args.device)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu" and world_size > 1:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    master = rank == 0
    out = args.out_dir
    latest_path, best_path = out / "latest.pt", out / "best.pt"

    # --- what to start from
    resume_ckpt = None
    if args.resume:
        if not latest_path.is_file():
            raise ValueError(f"--resume: no checkpoint at {latest_path}; run without --resume "
                             "first, or point --out-dir at the run to continue")
        resume_ckpt = _utils.load_checkpoint(latest_path)
    init_ckpt = None
    if args.init_from not in ("scratch",) and Path(args.init_from).is_file():
        init_ckpt = _utils.load_checkpoint(args.init_from)
    if args.tokenizer is None:
        pretrained = is_pretrained_name(args.init_from) or Path(args.init_from).is_dir()
        from_ckpt = (resume_ckpt or init_ckpt or {}).get("extra", {}).get("tokenizer", {})
        args.tokenizer = ("gpt2" if pretrained or from_ckpt.get("type") == "gpt2" else "char")
    check_settings(args, world_size)
    source_ckpt = resume_ckpt or init_ckpt
    ckpt_tok = (source_ckpt or {}).get("extra", {}).get("tokenizer")
    tokenizer, tokens = load_text_and_tokenizer(args, ckpt_tok, rank)

    # --- model (same initial weights on every rank: one seed before building it)
    torch.manual_seed(args.seed)
    model, _ = build_model(args, tokenizer.vocab_size)
    if model.config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"the model's vocabulary ({model.config.vocab_size}) is smaller than "
                         f"the {args.tokenizer} tokenizer's ({tokenizer.vocab_size}); pass the "
                         "matching --tokenizer")
    if args.init_from != "scratch":
        if args.block_size > model.config.block_size:
            raise ValueError(f"--block-size {args.block_size} is beyond the model's block_size "
                             f"{model.config.block_size} (its number of position embeddings); "
                             f"use --block-size {model.config.block_size} or less")
    block = args.block_size
    tokens.check_block_size(block)
    if resume_ckpt is not None:
        # Refuses (CheckpointError) a checkpoint of another model configuration.
        _utils.restore_checkpoint(resume_ckpt, model=model, source=latest_path)
    model.to(device)
    dtype = pick_dtype(args.dtype, device, model.config.n_embd)
    chunk = args.loss_chunk if args.loss_chunk is not None else (
        2048 if model.config.vocab_size >= 8192 else 0)
    # fused AdamW (one kernel per parameter for the whole update) measured fastest on this
    # CPU too: 1,881 vs 1,801 tokens/s (foreach) at 6 x 384 (benchmarks/README.md).
    fused = True
    optimizer = build_optimizer(model, args.optimizer, args.lr, args.weight_decay,
                                (args.beta1, args.beta2),
                                muon_lr=args.muon_lr, fused=fused,
                                avoid_dynamo=not args.compile and world_size == 1)
    start_step, tokens_seen, best_val, elapsed_before = 0, 0, math.inf, 0.0
    if resume_ckpt is not None:
        _utils.restore_checkpoint(resume_ckpt, optimizer=optimizer, source=latest_path)
        start_step = int(resume_ckpt["step"])
        tokens_seen = int(resume_ckpt["data_position"]["tokens_seen"])
        best_val = float(resume_ckpt["extra"].get("best_val_loss", math.inf))
        elapsed_before = float(resume_ckpt["extra"].get("elapsed_s", 0.0))
        saved_rngs = resume_ckpt["extra"].get("rank_rng_states")
        if saved_rngs is not None and len(saved_rngs) == world_size:
            _utils.set_rng_states(saved_rngs[rank])  # this rank's own stream
        else:
            # One process, or another number of processes than the run that saved: rank 0's
            # state (exact for one process; with dropout and several processes the masks
            # then differ from an uninterrupted run). The other ranks re-seed so that no two
            # ranks share one dropout stream.
            _utils.set_rng_states(resume_ckpt["rng_states"])
            if rank > 0:
                torch.manual_seed(args.seed + 1000 * (rank + 1) + start_step)
            saved_by = len(saved_rngs) if saved_rngs else 1
            if master and saved_by != world_size:
                print(f"warning: {latest_path} holds the RNG states of {saved_by} "
                      f"process(es), this run has {world_size}: it continues correctly, but "
                      "not bit for bit like an uninterrupted run", file=sys.stderr)
    else:
        torch.manual_seed(args.seed + 1000 * (rank + 1))  # dropout masks differ per rank

    loss_module = LanguageModelLoss(model, chunk)
    runner = loss_module
    if args.compile:
        runner = torch.compile(loss_module)
    if world_size > 1:
        runner = torch.nn.parallel.DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None)

    # --- outputs (rank 0 only)
    writer, log_file = None, None
    log_path = out / "train_log.jsonl"
    if master:
        from torch.utils.tensorboard import SummaryWriter

        try:
            out.mkdir(parents=True, exist_ok=True)
            # purge_step drops events a killed run wrote after its last checkpoint.
            writer = SummaryWriter(str(out / "tensorboard"),
                                   purge_step=start_step + 1 if args.resume else None)
            if args.resume and log_path.exists():
                kept = [ln for ln in log_path.read_text().splitlines()
                        if ln.strip() and json.loads(ln).get("step", 0) <= start_step]
                log_path.write_text("".join(k + "\n" for k in kept))
            elif not args.resume:
                log_path.write_text("")
            log_file = open(log_path, "a")  # noqa: SIM115 (kept open for the whole run)
        except OSError as error:
            raise ValueError(f"cannot write to --out-dir {out} ({error}); pass a directory "
                             "this user can create and write") from None
    val_windows = data_lib.eval_windows(tokens.val, block)
    eval_bs = args.eval_batch_size or max(1, 32768 // block)
    decay_steps = args.lr_decay_steps or args.max_steps
    tokens_per_step = args.batch_size * block * args.grad_accum_steps
    nan_spec = os.environ.get(NAN_HOOK_ENV, "-1").split(":")
    nan_step, nan_value = int(nan_spec[0]), float(nan_spec[1] if len(nan_spec) > 1 else "nan")
    params = [p for p in model.parameters() if p.requires_grad]

    if master:
        n_params = model.num_parameters()
        print(f"model: {n_params / 1e6:.2f}M parameters, {model.config.n_layer} layers, "
              f"{model.config.n_head} heads, width {model.config.n_embd}, block {block}, "
              f"vocab {model.config.vocab_size} ({args.tokenizer}); device {device}, "
              f"{str(dtype).replace('torch.', '')}, {args.optimizer}, {world_size} process(es)")
        print(f"data: {len(tokens.train):,} training / {len(tokens.val):,} validation tokens; "
              f"{tokens_per_step:,} tokens per step")
    reached, time_to_target, last_val = False, None, None
    bar = None
    if master and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=args.max_steps, initial=start_step, desc="train", dynamic_ncols=True)
    t_loop = time.time()
    tokens_at_loop = tokens_seen
    step = start_step
    last_good = start_step if resume_ckpt is not None else None
    try:
        while step < args.max_steps:
            lr = lr_at(step, args.lr, args.min_lr, args.warmup_steps, decay_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            loss_sum = torch.zeros((), device=device)
            t_step = time.time()
            for micro in range(args.grad_accum_steps):
                x, y = data_lib.get_batch(tokens.train, block, args.batch_size, args.seed, step,
                                          micro, rank, world_size)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                sync = (micro == args.grad_accum_steps - 1 or world_size == 1)
                ctx = contextlib.nullcontext() if sync else runner.no_sync()
                with ctx:
                    with autocast(device, dtype):
                        loss = runner(x, y)
                    (loss / args.grad_accum_steps).backward()
                loss_sum += loss.detach().float()
            step_loss = loss_sum / args.grad_accum_steps
            if step + 1 == nan_step:
                step_loss = step_loss * nan_value
            if world_size > 1:
                dist.all_reduce(step_loss)
                step_loss /= world_size
            loss_value = step_loss.item()
            if not math.isfinite(loss_value):
                optimizer.zero_grad(set_to_none=True)
                where = (f"the last good checkpoint {latest_path} (step {last_good}) is intact"
                         if last_good is not None else "no checkpoint had been written yet")
                raise TrainingError(
                    f"loss became {loss_value} at step {step + 1}; stopped without applying "
                    f"that update; {where}. Lower --lr or raise --warmup-steps, then "
                    "--resume.")
            if args.grad_clip and args.grad_clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip).item()
            else:
                grad_norm = torch.nn.utils.get_total_norm(
                    [p.grad for p in params if p.grad is not None]).item()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += tokens_per_step
            dt = time.time() - t_step
            tok_s = tokens_per_step / max(dt, 1e-9)
            if master:
                log_file.write(json.dumps({
                    "step": step, "loss": loss_value, "lr": lr, "grad_norm": grad_norm,
                    "tokens_per_s": tok_s, "time_s": time.time() - t_start}) + "\n")
                writer.add_scalar("train/loss", loss_value, step)
                writer.add_scalar("train/lr", lr, step)
                writer.add_scalar("train/grad_norm", grad_norm, step)
                writer.add_scalar("train/tokens_per_s", tok_s, step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}",
                                    tok_s=f"{tok_s:,.0f}", refresh=False)
            is_last = step == args.max_steps
            do_eval = is_last or (step % args.eval_interval == 0 and step >= args.eval_start)
            improved = False
            if do_eval:
                last_val = evaluate(loss_module, val_windows, eval_bs, device, dtype, rank,
                                    world_size)
                now = time.time() - t_start
                if args.target_val_loss is not None and last_val <= args.target_val_loss:
                    reached, time_to_target = True, elapsed_before + now
                improved = last_val < best_val
                best_val = min(best_val, last_val)
                if master:
                    ppl = math.exp(min(last_val, 50.0))
                    writer.add_scalar("val/loss", last_val, step)
                    writer.add_scalar("val/perplexity", ppl, step)
                    log_file.write(json.dumps({"step": step, "val_loss": last_val,
                                               "val_perplexity": ppl, "time_s": now}) + "\n")
                    msg = (f"step {step}: val loss {last_val:.4f}, perplexity {ppl:.2f}, "
                           f"{now:.1f} s since start")
                    if args.sample_tokens > 0:
                        sample = sample_text(model, tokenizer, args.sample_tokens,
                                             args.seed + step, device)
                        msg += "\n--- sample ---\n" + sample + "\n--------------"
                        writer.add_text("val/sample", sample, step)
                    (bar.write if bar is not None else print)(msg)
            # Every rank takes the same decision (the validation loss is all-reduced).
            save_latest = (is_last or reached or (
                args.checkpoint_interval and step % args.checkpoint_interval == 0) or (
                not args.checkpoint_interval and do_eval))
            rank_rngs = None
            if world_size > 1 and (improved or save_latest):
                # Each rank draws its own dropout masks: keep every rank's RNG state, so that
                # each resumes its own stream (rank 0 alone writes the file).
                rank_rngs = [None] * world_size
                dist.all_gather_object(rank_rngs, _utils.rng_states())
            if master:
                log_file.flush()
                elapsed = elapsed_before + time.time() - t_start
                if improved:
                    save_guarded(best_path, model, optimizer, step, tokens_seen, best_val,
                                 tokenizer, args, elapsed, rank_rngs)
                if save_latest:
                    save_guarded(latest_path, model, optimizer, step, tokens_seen, best_val,
                                 tokenizer, args, elapsed, rank_rngs)
                    last_good = step
            if reached:
                break
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.flush()
            writer.close()
        if log_file is not None:
            log_file.close()
    loop_s = time.time() - t_loop
    elapsed = elapsed_before + time.time() - t_start
    summary = {
        "best_val_loss": best_val if math.isfinite(best_val) else None,
        "best_val_perplexity": math.exp(best_val) if math.isfinite(best_val) else None,
        "final_step": step,
        "tokens_seen": tokens_seen,
        "elapsed_s": elapsed,
        "tokens_per_s": (tokens_seen - tokens_at_loop) / max(loop_s, 1e-9),
        "reached_target": reached,
        "time_to_target_s": time_to_target,
        "last_val_loss": last_val,
        "world_size": world_size,
        "dtype": str(dtype).replace("torch.", ""),
    }
    if master:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
    return summary


def save_guarded(path, *state) -> None:
    try:
        save_state(path, *state)
    except Exception as error:
        raise TrainingError(f"could not save checkpoint {path} ({type(error).__name__}: "
                            f"{error}); the previous {path.name} is left intact. Free disk "
                            "space or fix --out-dir, then --resume.") from error


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except (data_lib.DataError, CheckpointError, TrainingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
