"""Train a GPT on Tiny Shakespeare in one short file: the core of sprint 9, read it first.

    uv run python -m sprints.09_train_gpt2.results.train_minimal --out-dir runs/minimal

Everything a language model's training needs, top to bottom, and nothing else:

    data      the text -> character ids -> 90/10 split -> random windows (x, y = x shifted by one)
    model     sprint 8's GPT, from a seed
    loss      F.cross_entropy of the logits against the next tokens
    optimizer AdamW, weight decay on the matrices only, gradient clipping
    schedule  linear warmup, then cosine decay to min_lr
    eval      the mean loss over every token of the validation split
    sample    a few hundred characters, to read what the model learned

``train_gpt2.py`` is this same loop grown into a tool (presets, Muon, mixed precision, exact
resume, several processes, token shards, HellaSwag...). With the same flags the two compute
the same losses, step by step (tests/test_sprint09_minimal.py checks it): every extra of the
tool is something this file simply does not do.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib import import_module
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import data as data_lib  # reading, splitting and batch starts, as train_gpt2 does

_config = import_module("sprints.08_gpt2_assembly.results.config")
_model = import_module("sprints.08_gpt2_assembly.results.model")
_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")
_utils = import_module("sprints.08_gpt2_assembly.results.utils")


# ----- data ------------------------------------------------------------------------------------
def load_tokens(path: Path, tokenizer_name: str, val_fraction: float):
    """(tokenizer, train ids, val ids): the first 90% of the characters train, the rest
    validate. The character vocabulary is every distinct character of the whole text."""
    text = data_lib.read_text(path)
    train_text, val_text = data_lib.split_text(text, val_fraction)
    if tokenizer_name == "char":
        tokenizer = _tokenizer.get_tokenizer("char", text=text)
    else:
        tokenizer = _tokenizer.get_tokenizer("gpt2")
    train = np.asarray(tokenizer.encode(train_text), dtype=np.int64)
    val = np.asarray(tokenizer.encode(val_text), dtype=np.int64)
    return tokenizer, train, val


def get_batch(ids: np.ndarray, block_size: int, batch_size: int, seed: int, step: int):
    """``batch_size`` random windows of ``block_size + 1`` tokens: inputs and targets (B, T).

    The starts come from a generator seeded by (seed, step) (``data.batch_offsets``, which
    train_gpt2 uses too), so the batch of step k is the same in every run: a resumed run
    needs no saved iterator.
    """
    starts = data_lib.batch_offsets(len(ids), block_size, batch_size, seed, step)  # (B,)
    windows = torch.from_numpy(ids[starts[:, None] + np.arange(block_size + 1)])  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]  # x: tokens 0..T-1, y: tokens 1..T


# ----- the objective ---------------------------------------------------------------------------
def next_token_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model's prediction at every position against the next token."""
    logits, _ = model(x)  # (B, T) -> (B, T, V)
    B, T, V = logits.shape
    return F.cross_entropy(logits.view(B * T, V), y.reshape(B * T))  # (B*T, V) vs (B*T,)


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup from max_lr / warmup to max_lr, then half a cosine down to min_lr."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----- measuring -------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model, ids: np.ndarray, block_size: int, batch_size: int, device) -> float:
    """Mean loss over EVERY token of ``ids``: the split cut into back-to-back windows (each
    token but the first is predicted once), plus the leftover tail as one short window."""
    model.eval()
    n_windows = (len(ids) - 1) // block_size
    loss_sum, count = 0.0, 0
    for first in range(0, n_windows, batch_size):
        rows = min(batch_size, n_windows - first)
        chunk = torch.from_numpy(ids[first * block_size:(first + rows) * block_size + 1])
        x = chunk[:-1].view(rows, block_size).to(device)  # (rows * T + 1,) -> (rows, T)
        y = chunk[1:].view(rows, block_size).to(device)
        loss_sum += next_token_loss(model, x, y).item() * y.numel()
        count += y.numel()
    tail = torch.from_numpy(ids[n_windows * block_size:])
    if len(tail) > 1:
        x, y = tail[None, :-1].to(device), tail[None, 1:].to(device)  # (1, t)
        loss_sum += next_token_loss(model, x, y).item() * y.numel()
        count += y.numel()
    model.train()
    return loss_sum / count


@torch.no_grad()
def sample(model, tokenizer, n_tokens: int, seed: int, device, top_k: int = 40) -> str:
    """Draw ``n_tokens`` one at a time from the model's distribution (top-k, temperature 1),
    starting from a newline, with a generator of its own so training's randomness is untouched."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    try:
        prompt = tokenizer.encode("\n")
    except ValueError:  # a character vocabulary without a newline: start from id 0
        prompt = [0]
    idx = torch.tensor([prompt], device=device)  # (1, t)
    for _ in range(n_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])  # the last block_size tokens
        logits = logits[:, -1, :]  # (1, V): the prediction after the last token
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -float("inf"))  # keep the k most likely
        next_id = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
        idx = torch.cat([idx, next_id], dim=1)
    model.train()
    return tokenizer.decode(idx[0, len(prompt):].tolist())


# ----- the loop --------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> dict:
    t0 = time.time()
    device = torch.device(args.device)
    path = args.data_file or data_lib.download(dest=data_lib.DEFAULT_DATA_FILE)
    tokenizer, train_ids, val_ids = load_tokens(path, args.tokenizer, args.val_fraction)
    if min(len(train_ids), len(val_ids)) < args.block_size + 1:
        raise data_lib.DataError(f"{path} is too short for --block-size {args.block_size}; "
                                 "use a longer text or a smaller --block-size")

    torch.manual_seed(args.seed)  # the initial weights are a function of the seed
    config = _config.GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size,
                               n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                               dropout=args.dropout)
    model = _model.GPT(config).to(device)
    # AdamW; decay only the matrices (sprint 8's configure_optimizers): biases and LayerNorm
    # gains shift and scale, and pulling them to 0 would only fight that.
    optimizer = model.configure_optimizers(weight_decay=args.weight_decay,
                                           learning_rate=args.lr,
                                           betas=(args.beta1, args.beta2), fused=True)
    torch.manual_seed(args.seed + 1000)  # dropout's masks: the same stream as train_gpt2's
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"model: {model.num_parameters() / 1e6:.2f}M parameters; data: {len(train_ids):,} "
          f"training / {len(val_ids):,} validation tokens; {device}")

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    from torch.utils.tensorboard import SummaryWriter  # imported here: it takes a second

    writer = SummaryWriter(str(out / "tensorboard"))
    log = (out / "train_log.jsonl").open("w")
    best_val, val_loss, records = math.inf, None, []
    bar = tqdm(range(args.max_steps), desc="train", disable=args.no_progress)
    for step in bar:
        lr = lr_at(step, args.lr, args.min_lr, args.warmup_steps, args.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr

        x, y = get_batch(train_ids, args.block_size, args.batch_size, args.seed, step)
        loss = next_token_loss(model, x.to(device), y.to(device))  # forward
        loss.backward()  # gradients of the mean loss w.r.t. every parameter
        # Rescale all gradients together if their joint norm exceeds grad_clip: one unlucky
        # batch cannot throw the weights far (--grad-clip 0: no clipping, the norm is logged).
        grad_norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        record = {"step": step + 1, "loss": loss.item(), "lr": lr, "grad_norm": grad_norm.item()}
        writer.add_scalar("train/loss", record["loss"], step + 1)
        writer.add_scalar("train/lr", lr, step + 1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2e}")
        if (step + 1) % args.eval_interval == 0 or step + 1 == args.max_steps:
            val_loss = evaluate(model, val_ids, args.block_size, args.batch_size, device)
            record["val_loss"] = val_loss
            writer.add_scalar("val/loss", val_loss, step + 1)
            message = f"step {step + 1}: val loss {val_loss:.4f} (perplexity " \
                      f"{math.exp(val_loss):.2f})"
            if args.sample_tokens > 0:
                text = sample(model, tokenizer, args.sample_tokens, args.seed + step + 1, device)
                message += f"\n--- sample ---\n{text}\n--------------"
            tqdm.write(message)
            if val_loss < best_val:  # keep the best model, written atomically
                best_val = val_loss
                extra = {"tokenizer": _tokenizer.tokenizer_to_record(tokenizer),
                         "best_val_loss": best_val}  # sprint 10's generate reads the tokenizer
                _utils.save_checkpoint(out / "best.pt", model=model, config=config,
                                       step=step + 1, extra=extra)
        log.write(json.dumps(record) + "\n")
        records.append(record)
    log.close()
    writer.close()
    plot_losses(records, out / "loss.png")

    summary = {"best_val_loss": best_val, "last_val_loss": val_loss,
               "final_step": args.max_steps, "elapsed_s": time.time() - t0}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


def plot_losses(records: list[dict], path: Path, title: str = "train_minimal.py",
                train_key: str = "loss", train_label: str = "train", dpi: int = 100) -> Path:
    """loss.png: the training loss of every logged step (``record[train_key]``) and the
    validation loss of each evaluation (``record["val_loss"]``), written atomically.
    Sprint 10's finetune (and sprint 12) draw theirs with it too."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    train = [(r["step"], r[train_key]) for r in records if train_key in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), lw=1, label=train_label)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation")
    ax.set(xlabel="step", ylabel="loss (nats per token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _utils.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="The minimal GPT training loop (the core of train_gpt2.py): character-level "
                    "Tiny Shakespeare, AdamW, warmup + cosine, evaluation and samples. "
                    "The defaults are train_gpt2's: 4 layers x 128, 300 steps, seconds on a CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-file", type=Path, default=None,
                   help="UTF-8 text; without it Tiny Shakespeare is downloaded to data/")
    p.add_argument("--tokenizer", choices=["char", "gpt2"], default="char")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "train_minimal",
                   help="train_log.jsonl, tensorboard/, best.pt, loss.png, summary.json")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--min-lr", type=float, default=1e-4, help="where the cosine ends")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--sample-tokens", type=int, default=200)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_steps",
                 "warmup_steps", "eval_interval"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.grad_clip < 0 or args.sample_tokens < 0 or not 0.0 < args.val_fraction < 1.0:
        parser.error("--grad-clip and --sample-tokens must be >= 0, --val-fraction in (0, 1)")
    if args.n_embd % args.n_head:
        parser.error(f"--n-embd {args.n_embd} must be a multiple of --n-head {args.n_head}")
    try:
        train(args)
    except (data_lib.DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
