"""Fine-tune a GPT to classify text (SMS spam): a new linear head on the last real token.

    uv run python -m sprints.12_task_finetuning.results.classify \\
        --init-from runs/shakespeare_gpt2_small/best.pt --trainable all --out-dir runs/classify
    uv run python -m sprints.12_task_finetuning.results.classify \\
        --checkpoint runs/classify/best.pt --predict "WINNER! Claim your free prize now"

The model: the pretrained GPT up to its final LayerNorm (``hidden_states``), then a new
``nn.Linear(n_embd, num_classes)`` in place of the language-model head::

    ids (B, T) right-padded -> gpt.hidden_states -> (B, T, C)
      -> the row's last real token h[b, lengths[b] - 1]  (B, C)
      -> head                                            (B, num_classes) logits

Why the last token: under the causal mask, position t attends to positions 0..t only, so the
last real token is the only position whose vector has seen the whole message; the first
token has seen one word. And why the last REAL token: a batch is right-padded with
``<|endoftext|>`` (id 50256) to its longest message, and for a shorter message the last
position of the row holds padding; its vector has seen the padding too. Reading position
``lengths[b] - 1`` instead gives exactly what the unpadded message gives (padding after a
token cannot reach it through the causal mask), so batching changes nothing.

``--trainable`` picks what learns: ``head`` (the new head only: the GPT is a frozen feature
extractor), ``last-blocks`` (the last ``--n-last-blocks`` blocks, the final LayerNorm and
the head, as LLMs-from-scratch ch. 6), ``all``, or ``lora`` (sprint 10's adapters on every
block linear, plus the head).

The data is ``sms_data.py``: a balanced 70/10/20 split (ham undersampled to the number of
spam, shuffled with ``--seed``). The split is a pure function of the data file and the seed,
so it is made again on every run and written to ``--out-dir`` as train.csv, validation.csv
and test.csv (for inspection, and for the benchmark's TF-IDF baseline, which reads the very
rows the GPT saw); the CSVs are outputs, never read back by this script. Written to
``--out-dir``:

    train.csv, validation.csv, test.csv   the split
    best.pt          the epoch with the best validation accuracy (ties: lower loss); our
                     checkpoint format: the GPT's weights (LoRA merged in) and config, plus
                     extra["classifier"] = head weights, label names, max length, pad id
    log.jsonl        per step: loss; per epoch: loss and accuracy of train/validation/test
    tensorboard/     the same as TensorBoard scalars
    confusion_matrix.png   the test split, from best.pt's weights
    summary.json     per-split accuracy and loss, test precision/recall/F1 of "spam",
                     train seconds, sizes, settings
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import sms_data

_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
_devices = import_module("sprints.01_setup_and_basics.results.devices")
_utils = import_module("sprints.08_gpt2_assembly.results.utils")

TRAINABLE = ("head", "last-blocks", "all", "lora")
DEFAULT_INIT = Path("runs") / "shakespeare_gpt2_small" / "best.pt"
DEFAULT_LR = {"head": 1e-3, "last-blocks": 2e-4, "all": 1e-4, "lora": 1e-3}
CHECKPOINT_NAME = "best.pt"


# ----- the model ----------------------------------------------------------------------------
class GPTClassifier(nn.Module):
    """A GPT's hidden states at each row's last real token -> ``head`` -> class logits."""

    def __init__(self, gpt: nn.Module, num_classes: int):
        super().__init__()
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.n_embd, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) right-padded, lengths (B,) real tokens per row -> logits (B, K)."""
        h = self.gpt.hidden_states(ids)  # (B, T, C), after the final LayerNorm
        rows = torch.arange(ids.size(0), device=ids.device)
        last = h[rows, lengths.to(ids.device) - 1]  # (B, T, C) -> (B, C)
        return self.head(last)  # (B, C) -> (B, K)


def set_trainable(model: GPTClassifier, mode: str, n_last_blocks: int = 1,
                  lora_rank: int = 8, lora_alpha: float | None = None) -> None:
    """Make exactly the parameters of ``mode`` require grad (in place; LoRA wraps layers)."""
    if mode not in TRAINABLE:
        raise ValueError(f"unknown --trainable {mode!r}; choose one of {TRAINABLE}")
    blocks = model.gpt.transformer.h
    if mode == "last-blocks" and not 1 <= n_last_blocks <= len(blocks):
        raise ValueError(f"--n-last-blocks {n_last_blocks} is not between 1 and the model's "
                         f"{len(blocks)} blocks")
    if mode == "lora":
        lora = import_module("sprints.10_pretrained_and_generation.results.lora")
        alpha = float(lora_rank) if lora_alpha is None else lora_alpha
        lora.apply_lora(model.gpt, lora_rank, alpha)  # freezes the GPT, adapters train
    else:
        model.gpt.requires_grad_(mode == "all")
        if mode == "last-blocks":
            for block in list(blocks)[-n_last_blocks:]:
                block.requires_grad_(True)
            model.gpt.transformer.ln_f.requires_grad_(True)
    model.head.requires_grad_(True)


def plain_gpt_state(model: GPTClassifier) -> dict[str, Tensor]:
    """The GPT's weights with any LoRA adapters folded in: an ordinary GPT's state_dict."""
    lora = import_module("sprints.10_pretrained_and_generation.results.lora")
    gpt = model.gpt
    if lora.lora_layers(gpt):
        gpt = lora.merge_and_unload(copy.deepcopy(gpt))
    return {k: v.detach().cpu().clone() for k, v in gpt.state_dict().items()}


def save_classifier(path: Path, model: GPTClassifier, tokenizer, labels: list[str],
                    max_length: int, pad_id: int, info: dict) -> Path:
    tokenizer_to_record = import_module("sprints.08_gpt2_assembly.results.tokenizer"
                                        ).tokenizer_to_record
    head = {k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()}
    return _utils.save_checkpoint(
        path, model=plain_gpt_state(model), config=model.gpt.config.to_dict(),
        step=int(info.get("epoch", 0)),
        extra={"tokenizer": tokenizer_to_record(tokenizer), **info,
               "classifier": {"head": head, "label_names": list(labels),
                              "max_length": int(max_length), "pad_token_id": int(pad_id)}})


def load_classifier(path: str | Path):
    """(classifier in eval mode, tokenizer, label names, max length, pad id) from a
    checkpoint written by this script."""
    model_mod = import_module("sprints.08_gpt2_assembly.results.model")
    tok_mod = import_module("sprints.08_gpt2_assembly.results.tokenizer")
    gpt, ckpt = model_mod.GPT.from_checkpoint(path)
    record = (ckpt.get("extra") or {}).get("classifier")
    if not isinstance(record, dict) or "head" not in record:
        raise _utils.CheckpointError(
            f"{path} is not a classifier checkpoint (no extra['classifier']); train one with "
            "this script first and pass its best.pt")
    labels = list(record["label_names"])
    model = GPTClassifier(gpt, len(labels))
    model.head.load_state_dict(record["head"])
    tokenizer = tok_mod.tokenizer_from_record(ckpt["extra"].get("tokenizer"))
    return model.eval(), tokenizer, labels, int(record["max_length"]), int(record["pad_token_id"])


# ----- metrics ------------------------------------------------------------------------------
def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes ** 2).view(num_classes, num_classes)


def class_metrics(predictions: Tensor, targets: Tensor, positive: int,
                  num_classes: int) -> dict[str, float]:
    """Accuracy, and precision/recall/F1 of class ``positive`` (0 where undefined)."""
    cm = confusion_matrix(predictions, targets, num_classes).double()
    tp = cm[positive, positive].item()
    predicted, actual = cm[:, positive].sum().item(), cm[positive].sum().item()
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": cm.trace().item() / max(cm.sum().item(), 1), "precision": precision,
            "recall": recall, "f1": f1}


@torch.no_grad()
def evaluate(model: GPTClassifier, loader, device) -> dict:
    """Mean cross-entropy, accuracy and the predictions over a whole split."""
    was_training = model.training
    model.eval()
    total_loss, preds, targets = 0.0, [], []
    for ids, lengths, labels in loader:
        logits = model(ids.to(device), lengths.to(device))
        total_loss += F.cross_entropy(logits, labels.to(device), reduction="sum").item()
        preds.append(logits.argmax(-1).cpu())
        targets.append(labels)
    model.train(was_training)
    preds, targets = torch.cat(preds), torch.cat(targets)
    return {"loss": total_loss / len(targets),
            "accuracy": (preds == targets).double().mean().item(),
            "predictions": preds, "targets": targets}


def plot_confusion(cm: Tensor, labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm.numpy(), cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    _utils.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


# ----- command line -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    t = _arg_types
    p = argparse.ArgumentParser(
        description="Fine-tune a pretrained GPT as a text classifier (SMS spam), or classify "
        "a text with one (--predict).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--init-from", default=str(DEFAULT_INIT),
                   help="the base: gpt2 (the hub), a Hugging Face GPT-2 directory, or our "
                   "checkpoint file (train_gpt2 / finetune)")
    p.add_argument("--data-file", type=Path, default=None,
                   help="your SMSSpamCollection file (label TAB text per line); default: "
                   "download the UCI zip once")
    p.add_argument("--data-url", default=sms_data.SMS_SPAM_URL, help="where to download from")
    p.add_argument("--download-dir", type=Path, default=sms_data.DEFAULT_DOWNLOAD_DIR)
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "classify")
    g = p.add_argument_group("what trains")
    g.add_argument("--trainable", choices=TRAINABLE, default="all")
    g.add_argument("--n-last-blocks", type=t.positive_int, default=None,
                   help="with --trainable last-blocks: how many (default 1)")
    g.add_argument("--lora-rank", type=t.positive_int, default=None,
                   help="with --trainable lora (default 8)")
    g.add_argument("--lora-alpha", type=t.positive_float, default=None,
                   help="with --trainable lora (default: the rank)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=t.positive_int, default=3)
    g.add_argument("--batch-size", type=t.positive_int, default=8)
    g.add_argument("--lr", type=t.positive_float, default=None,
                   help="AdamW learning rate (default: " + ", ".join(
                       f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--weight-decay", type=t.non_negative_float, default=0.1)
    g.add_argument("--grad-clip", type=t.non_negative_float, default=1.0, help="0 = off")
    g.add_argument("--dropout", type=t.half_open_fraction, default=0.0)
    g.add_argument("--max-length", type=t.positive_int, default=None,
                   help="tokens kept per message (default and cap: the model's block size)")
    g.add_argument("--seed", type=t.non_negative_int, default=123,
                   help="the split, the shuffling and the head's init")
    g.add_argument("--device", choices=_devices.DEVICE_CHOICES, default="auto")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    g = p.add_argument_group("prediction")
    g.add_argument("--predict", nargs="+", metavar="TEXT", default=None,
                   help="classify these texts with --checkpoint instead of training")
    g.add_argument("--checkpoint", type=Path, default=None,
                   help="a classifier written by this script (its best.pt)")
    return p


def predict(args) -> list[tuple[str, float]]:
    model, tokenizer, labels, max_length, pad_id = load_classifier(args.checkpoint)
    collate = sms_data.Collate(pad_id, max_length)
    encoded = [(tokenizer.encode(text), 0) for text in args.predict]
    if any(not ids for ids, _ in encoded):
        raise ValueError("--predict got an empty text; give some words to classify")
    ids, lengths, _ = collate(encoded)
    with torch.no_grad():
        probs = torch.softmax(model(ids, lengths).float(), dim=-1)  # (N, K)
    out = []
    for text, row in zip(args.predict, probs, strict=True):
        k = int(row.argmax())
        out.append((labels[k], float(row[k])))
        print(f"{labels[k]}\t{float(row[k]):.4f}\t{text}")
    return out


def load_data(args) -> list[tuple[str, str]]:
    path = args.data_file
    if path is None:
        path = sms_data.download_sms_spam(args.data_url, args.download_dir)
    return sms_data.read_messages(path)


def run(args) -> dict:
    from torch.utils.data import DataLoader
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    finetune = import_module("sprints.10_pretrained_and_generation.results.finetune")
    optimizers = import_module("sprints.09_train_gpt2.results.optimizers")

    device = _devices.pick_device(args.device)
    rows = load_data(args)
    labels = sms_data.label_names(rows)
    splits = sms_data.balanced_split(rows, args.seed)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    sms_data.write_splits(splits, out)

    if args.init_from == str(DEFAULT_INIT) and not DEFAULT_INIT.is_file():
        raise FileNotFoundError(
            f"the default base model {DEFAULT_INIT} does not exist; pretrain it with sprint "
            "9's train_gpt2.py (see the root README), or pass --init-from gpt2, a Hugging Face "
            "GPT-2 directory or another checkpoint")
    gpt, tokenizer = finetune.load_base(args.init_from, args.dropout)
    block = gpt.config.block_size
    max_length = min(args.max_length or block, block)
    if args.max_length and args.max_length > block:
        print(f"note: --max-length {args.max_length} is beyond the model's {block} "
              f"positions; using {block}", file=sys.stderr)
    pad_id = getattr(tokenizer, "eot_token_id", None)
    pad_id = 0 if pad_id is None else pad_id  # never read: any valid id would do

    torch.manual_seed(args.seed)
    model = GPTClassifier(gpt, len(labels))
    set_trainable(model, args.trainable, args.n_last_blocks or 1, args.lora_rank or 8,
                  args.lora_alpha)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.trainable]
    optimizer = optimizers.build_optimizer(model, "adamw", lr, args.weight_decay,
                                           (0.9, 0.999), avoid_dynamo=True)

    collate = sms_data.Collate(pad_id, max_length)
    datasets = {name: sms_data.MessageDataset(part, tokenizer, labels)
                for name, part in splits.items()}
    shuffle_gen = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(datasets["train"], args.batch_size, shuffle=True,
                              collate_fn=collate, generator=shuffle_gen)
    eval_loaders = {name: DataLoader(ds, 4 * args.batch_size, collate_fn=collate)
                    for name, ds in datasets.items()}
    sizes = {name: len(ds) for name, ds in datasets.items()}
    print(f"{args.trainable}: {trainable:,} trainable of {total:,} parameters; split "
          f"{sizes} ({', '.join(labels)} balanced); max length {max_length}; device {device}")

    writer = SummaryWriter(str(out / "tensorboard"))
    log_file = open(out / "log.jsonl", "w", encoding="utf-8")  # noqa: SIM115 (closed below)

    def log(record: dict) -> None:
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()

    def evaluate_all(epoch: int, step: int) -> dict:
        results = {name: evaluate(model, loader, device) for name, loader in eval_loaders.items()}
        record = {"epoch": epoch, "step": step}
        for name, r in results.items():
            record[f"{name}_loss"], record[f"{name}_accuracy"] = r["loss"], r["accuracy"]
            writer.add_scalar(f"{name}/loss", r["loss"], step)
            writer.add_scalar(f"{name}/accuracy", r["accuracy"], step)
        log(record)
        print(f"epoch {epoch}: " + ", ".join(
            f"{n} acc {r['accuracy']:.3f} loss {r['loss']:.3f}" for n, r in results.items()))
        return results

    ckpt_path = out / CHECKPOINT_NAME
    info = {"init_from": args.init_from, "trainable": args.trainable, "seed": args.seed}
    best = None
    step, train_s = 0, 0.0
    bar = tqdm(total=args.epochs * len(train_loader), desc="classifier", dynamic_ncols=True,
               disable=args.no_progress)
    try:
        evaluate_all(0, 0)  # the untrained head: what training has to beat
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            for ids, lengths, y in train_loader:
                loss = F.cross_entropy(model(ids.to(device), lengths.to(device)), y.to(device))
                loss.backward()
                if args.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                value = loss.item()
                if not math.isfinite(value):
                    raise ValueError(f"the training loss became {value} at step {step}; try "
                                     f"a smaller --lr than {lr:g}")
                log({"step": step, "epoch": epoch, "loss": value})
                writer.add_scalar("train/batch_loss", value, step)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}")
            train_s += time.perf_counter() - t0
            results = evaluate_all(epoch, step)
            key = (results["validation"]["accuracy"], -results["validation"]["loss"])
            if best is None or key > best["key"]:
                best = {"key": key, "epoch": epoch}
                save_classifier(ckpt_path, model, tokenizer, labels, max_length, pad_id,
                                {**info, "epoch": epoch,
                                 "val_accuracy": results["validation"]["accuracy"]})
    finally:
        bar.close()
        writer.close()
        log_file.close()

    # The reported numbers are those of best.pt, read back as --predict would read it.
    final, _, _, _, _ = load_classifier(ckpt_path)
    final.to(device)
    results = {name: evaluate(final, loader, device) for name, loader in eval_loaders.items()}
    positive = labels.index("spam") if "spam" in labels else len(labels) - 1
    test = results["test"]
    metrics = class_metrics(test["predictions"], test["targets"], positive, len(labels))
    cm = confusion_matrix(test["predictions"], test["targets"], len(labels))
    plot_confusion(cm.cpu(), labels, out / "confusion_matrix.png",
                   f"test split, epoch {best['epoch']} ({args.trainable})")
    summary = {
        "accuracy": {name: r["accuracy"] for name, r in results.items()},
        "loss": {name: r["loss"] for name, r in results.items()},
        "positive_label": labels[positive], "test_precision": metrics["precision"],
        "test_recall": metrics["recall"], "test_f1": metrics["f1"],
        "confusion_matrix": cm.tolist(), "label_names": labels, "best_epoch": best["epoch"],
        "train_seconds": train_s, "epochs": args.epochs, "steps": step,
        "trainable": args.trainable, "trainable_parameters": trainable,
        "total_parameters": total, "lr": lr, "batch_size": args.batch_size,
        "max_length": max_length, "split_sizes": sizes, "init_from": args.init_from,
        "seed": args.seed, "device": str(device), "checkpoint": str(ckpt_path),
    }
    _utils.atomic_write(out / "summary.json",
                        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    print(f"best epoch {best['epoch']}: test accuracy {summary['accuracy']['test']:.3f}, "
          f"{labels[positive]} precision {metrics['precision']:.3f} recall "
          f"{metrics['recall']:.3f}; trained {train_s:.1f} s; wrote {out}/")
    return summary


def main(argv: list[str] | None = None) -> dict | list:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.predict is not None and args.checkpoint is None:
        parser.error("--predict needs --checkpoint PATH, a classifier written by this script")
    if args.n_last_blocks is not None and args.trainable != "last-blocks":
        parser.error("--n-last-blocks goes with --trainable last-blocks")
    if (args.lora_rank or args.lora_alpha) and args.trainable != "lora":
        parser.error("--lora-rank and --lora-alpha go with --trainable lora")
    try:
        _devices.pick_device(args.device)
    except _devices.DeviceError as error:
        parser.error(str(error))
    try:
        return predict(args) if args.predict is not None else run(args)
    except (sms_data.DataError, _utils.CheckpointError, OSError, ValueError,
            RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
