"""Fine-tune a GPT on a text file: all weights, or LoRA adapters only (``--lora-rank``).

    uv run python -m sprints.10_pretrained_and_generation.results.finetune \\
        --init-from gpt2 --data-file input.txt --lora-rank 8 --out-dir runs/finetune

``--init-from`` is a hub name (``gpt2``), a local Hugging Face GPT-2 directory, or a
checkpoint written by sprint 9's train_gpt2.py or by this script. The pieces are sprint 9's:
``data.py`` (download, split, token cache, batches as a function of (seed, step)),
``lm_loss.py`` (the chunked cross-entropy), ``evaluation.py`` (the validation loss),
``precision.py`` (autocast), ``lr_schedule.py`` and ``optimizers.py``; LoRA is
``lora.py`` of this sprint. Written to ``--out-dir``:

    model.pt      our checkpoint (LoRA: merged into the weights); generate.py --checkpoint,
                  export_gguf.py --checkpoint and --init-from of this script read it
    hf_model/     the same weights as a Hugging Face GPT-2 directory (config.json, safetensors)
    adapter/      LoRA only: adapter_model.safetensors + adapter_config.json, peft's layout
    log.jsonl     one line per step (train loss, lr, grad norm) and per evaluation (val loss)
    loss.png      training and validation loss against the step
    summary.json  the run's settings and results

The weights saved are those of the evaluation with the lowest validation loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from importlib import import_module
from pathlib import Path

_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
_devices = import_module("sprints.01_setup_and_basics.results.devices")
_lora_targets_default = ("c_attn", "c_proj", "c_fc")  # lora.DEFAULT_TARGETS, without torch


def build_parser() -> argparse.ArgumentParser:
    t = _arg_types
    p = argparse.ArgumentParser(
        description="Fine-tune a pretrained GPT on a text file, fully or with LoRA adapters.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--init-from", required=True,
                   help="gpt2 (the hub), a Hugging Face GPT-2 directory, or our checkpoint file")
    p.add_argument("--data-file", type=Path, default=None,
                   help="UTF-8 text to fine-tune on (default: download Tiny Shakespeare once)")
    p.add_argument("--val-fraction", type=t.open_fraction, default=0.1,
                   help="the last part of the text, held out for validation")
    p.add_argument("--cache-dir", type=Path, default=Path("data") / "cache",
                   help="where token ids are cached")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "finetune")
    g = p.add_argument_group("LoRA (leave --lora-rank out for full fine-tuning)")
    g.add_argument("--lora-rank", type=t.positive_int, default=None, help="r, the adapters' rank")
    g.add_argument("--lora-alpha", type=t.positive_float, default=None,
                   help="alpha; the update is scaled by alpha / r (default: alpha = r)")
    g.add_argument("--lora-dropout", type=t.half_open_fraction, default=0.0,
                   help="dropout on the adapters' input")
    g.add_argument("--lora-targets", nargs="+", default=list(_lora_targets_default),
                   help="module-name suffixes to adapt, matched as peft does (c_proj = "
                   "attn.c_proj and mlp.c_proj)")
    g = p.add_argument_group("training")
    g.add_argument("--block-size", type=t.positive_int, default=128,
                   help="training window (at most the model's block size)")
    g.add_argument("--batch-size", type=t.positive_int, default=4)
    g.add_argument("--max-steps", type=t.positive_int, default=50)
    g.add_argument("--lr", type=t.positive_float, default=None,
                   help="peak learning rate (default 3e-5 full, 1e-3 LoRA)")
    g.add_argument("--min-lr", type=t.non_negative_float, default=None,
                   help="cosine decay floor (default: --lr, a constant rate)")
    g.add_argument("--warmup-steps", type=t.non_negative_int, default=0)
    g.add_argument("--weight-decay", type=t.non_negative_float, default=0.0)
    g.add_argument("--grad-clip", type=t.non_negative_float, default=1.0, help="0 = off")
    g.add_argument("--dropout", type=t.half_open_fraction, default=0.0,
                   help="the model's own dropout while fine-tuning")
    g.add_argument("--seed", type=t.non_negative_int, default=1337)
    g = p.add_argument_group("evaluation and speed")
    g.add_argument("--eval-interval", type=t.positive_int, default=25)
    g.add_argument("--eval-tokens", type=t.non_negative_int, default=8192,
                   help="validation tokens per evaluation (0 = the whole split)")
    g.add_argument("--loss-chunk", type=t.non_negative_int, default=None,
                   help="rows per chunk of sprint 9's chunked loss, 0 = the model's own loss "
                   "(default: 2048 with a vocabulary >= 8192, LoRA or not, else 0)")
    g.add_argument("--device", choices=_devices.DEVICE_CHOICES, default="auto")
    g.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16 = autocast (weights stay float32)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


# ----- model -------------------------------------------------------------------------------
def load_base(init_from: str, dropout: float = 0.0):
    """(model, tokenizer) from our checkpoint file, a Hugging Face directory or a hub name,
    through generate.py's loaders (they check the weights and say how to get GPT-2's)."""
    from .generate import load_from_checkpoint, load_from_pretrained

    if Path(init_from).is_file():
        model, tokenizer = load_from_checkpoint(init_from)
    else:
        model, tokenizer = load_from_pretrained(init_from)
    if dropout != model.config.dropout:  # rebuilt with the new rate: no shapes change
        gpt = type(model)(dataclasses.replace(model.config, dropout=dropout))
        gpt.load_state_dict(model.state_dict())
        model = gpt
    return model, tokenizer


def default_loss_chunk(vocab_size: int) -> int:
    """Sprint 9's rule (``model_setup.default_loss_chunk``): its chunked loss never holds all
    (B, T, vocab) logits at once, and with a frozen output layer (LoRA) it skips that layer's
    gradient, so it is the cheaper choice for full and LoRA fine-tuning alike
    (benchmarks/bench_lora.py)."""
    return import_module("sprints.09_train_gpt2.results.model_setup").default_loss_chunk(
        vocab_size)

def train_step(loss_fn, optimizer, params, x, y, grad_clip: float, autocast) -> tuple:
    """One optimizer step on the batch (x, y); returns (loss, gradient norm or None)."""
    import torch

    with autocast():
        loss = loss_fn(x, y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip).item() if grad_clip > 0 else None
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item(), norm


def plot_losses(records: list[dict], path: Path, title: str) -> None:
    """loss.png of a fine-tuning run: sprint 9's plot, with this log's key for the train loss."""
    minimal = import_module("sprints.09_train_gpt2.results.train_minimal")
    minimal.plot_losses(records, path, title, train_key="train_loss",
                        train_label="train (one batch)", dpi=120)


def run(args) -> dict:
    import torch
    from tqdm.auto import tqdm

    from . import lora

    data = import_module("sprints.09_train_gpt2.results.data")
    evaluation = import_module("sprints.09_train_gpt2.results.evaluation")
    lm_loss = import_module("sprints.09_train_gpt2.results.lm_loss")
    lr_schedule = import_module("sprints.09_train_gpt2.results.lr_schedule")
    precision = import_module("sprints.09_train_gpt2.results.precision")
    optimizers = import_module("sprints.09_train_gpt2.results.optimizers")
    utils = import_module("sprints.08_gpt2_assembly.results.utils")

    device = _devices.pick_device(args.device)
    use_lora = args.lora_rank is not None
    lr = args.lr if args.lr is not None else (1e-3 if use_lora else 3e-5)
    min_lr = lr if args.min_lr is None else args.min_lr
    torch.manual_seed(args.seed)

    model, tokenizer = load_base(args.init_from, args.dropout)
    block = min(args.block_size, model.config.block_size)
    if block < args.block_size:
        print(f"note: --block-size {args.block_size} is beyond the model's "
              f"{model.config.block_size} positions; using {block}", file=sys.stderr)
    text = data.read_text(args.data_file if args.data_file is not None else data.download())
    train_text, val_text = data.split_text(text, args.val_fraction)
    tokens = data.TokenData(data.encode_cached(tokenizer, train_text, args.cache_dir),
                            data.encode_cached(tokenizer, val_text, args.cache_dir))
    tokens.check_block_size(block)

    if use_lora:
        alpha = args.lora_alpha if args.lora_alpha is not None else float(args.lora_rank)
        lora.apply_lora(model, args.lora_rank, alpha, args.lora_dropout, args.lora_targets)
        mode = (f"LoRA r={args.lora_rank} alpha={alpha:g} dropout={args.lora_dropout:g} on "
                f"{' '.join(args.lora_targets)} ({len(lora.lora_layers(model))} layers)")
    else:
        mode = "full fine-tuning"
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable, total = sum(p.numel() for p in params), sum(p.numel() for p in model.parameters())
    print(f"{mode}: {trainable:,} trainable of {total:,} parameters "
          f"({100 * trainable / total:.2f}%); {len(tokens.train):,} training and "
          f"{len(tokens.val):,} validation tokens; device {device}, {args.dtype}")

    chunk = (args.loss_chunk if args.loss_chunk is not None
             else default_loss_chunk(model.config.vocab_size))
    loss_fn = lm_loss.LanguageModelLoss(model, chunk)
    optimizer = optimizers.build_optimizer(model, "adamw", lr, args.weight_decay, (0.9, 0.95),
                                           avoid_dynamo=True)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]

    def autocast():  # sprint 9's: bf16 autocast, on a CPU with the math attention kernel
        return precision.autocast(device, dtype)

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    log_file = open(out / "log.jsonl", "w", encoding="utf-8")  # noqa: SIM115 (closed below)

    def log(record: dict) -> None:
        records.append(record)
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()

    def val_loss() -> float:
        # sprint 9's whole-split evaluation (each token predicted once), or its first
        # --eval-tokens predictions; 0 means all
        return evaluation.evaluate(loss_fn, tokens.val, block, args.batch_size, device, dtype,
                                   max_tokens=args.eval_tokens or None)

    best = {"val_loss": val_loss(), "step": 0}  # the base model's loss: what to beat
    base_val = best["val_loss"]
    best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    log({"step": 0, "val_loss": base_val})
    t_start = time.perf_counter()
    bar = tqdm(range(args.max_steps), desc="fine-tuning", disable=args.no_progress,
               dynamic_ncols=True)
    try:
        for step in bar:
            lr_now = lr_schedule.lr_at(step, lr, min_lr, args.warmup_steps, args.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr_now * group["lr_scale"]
            x, y = data.get_batch(tokens.train, block, args.batch_size, args.seed, step)
            t0 = time.perf_counter()
            loss, norm = train_step(loss_fn, optimizer, params, x.to(device), y.to(device),
                                    args.grad_clip, autocast)
            if not math.isfinite(loss):
                raise ValueError(f"the training loss became {loss} at step {step + 1}; "
                                 f"try a smaller --lr than {lr:g}")
            done = step + 1
            log({"step": done, "train_loss": loss, "lr": lr_now, "grad_norm": norm,
                 "step_s": time.perf_counter() - t0})
            bar.set_postfix(loss=f"{loss:.3f}", best_val=f"{best['val_loss']:.3f}")
            if done % args.eval_interval == 0 or done == args.max_steps:
                current = val_loss()
                log({"step": done, "val_loss": current})
                if current < best["val_loss"]:
                    best = {"val_loss": current, "step": done}
                    best_state = {n: p.detach().clone() for n, p in model.named_parameters()
                                  if p.requires_grad}
    finally:
        bar.close()
        log_file.close()
    train_s = time.perf_counter() - t_start

    # Back to the best evaluation's weights, then write them out.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in best_state:
                p.copy_(best_state[name])
    model.eval().to("cpu")
    written = {}
    if use_lora:
        written["adapter"] = str(lora.save_adapter(model, out / "adapter", args.init_from))
        model = lora.merge_and_unload(model)  # W + (alpha / r) B A: an ordinary GPT again
    tokenizer_to_record = import_module("sprints.08_gpt2_assembly.results.tokenizer"
                                        ).tokenizer_to_record
    written["checkpoint"] = str(utils.save_checkpoint(
        out / "model.pt", model=model, config=model.config, step=best["step"],
        extra={"tokenizer": tokenizer_to_record(tokenizer), "init_from": args.init_from,
               "val_loss": best["val_loss"], "lora": mode if use_lora else None}))
    try:
        written["hf_model"] = str(model.save_pretrained(out / "hf_model"))
    except ValueError as error:  # sinusoidal or bias-free models have no HF GPT-2 layout
        print(f"note: no Hugging Face copy written: {error}", file=sys.stderr)
    plot_losses(records, out / "loss.png", mode)

    summary = {
        "mode": mode, "init_from": args.init_from, "trainable_parameters": trainable,
        "total_parameters": total, "steps": args.max_steps, "lr": lr, "block_size": block,
        "batch_size": args.batch_size, "base_val_loss": base_val,
        "best_val_loss": best["val_loss"], "best_step": best["step"],
        "train_seconds": train_s, "device": str(device), "dtype": args.dtype, "files": written,
    }
    utils.atomic_write(out / "summary.json",
                       lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    print(f"validation loss {base_val:.4f} before, best {best['val_loss']:.4f} at step "
          f"{best['step']}; {args.max_steps} steps in {train_s:.1f} s; wrote {out}/")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.lora_rank is None and (args.lora_alpha is not None or args.lora_dropout > 0):
        parser.error("--lora-alpha and --lora-dropout need --lora-rank (LoRA is off without it)")
    try:
        _devices.pick_device(args.device)
    except _devices.DeviceError as error:
        parser.error(str(error))
    data = import_module("sprints.09_train_gpt2.results.data")
    utils = import_module("sprints.08_gpt2_assembly.results.utils")
    try:
        run(args)
    except (data.DataError, utils.CheckpointError, OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
