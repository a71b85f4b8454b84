"""HellaSwag: does the model pick the right ending of a sentence, among four?

    uv run python -m sprints.09_train_gpt2.results.hellaswag --checkpoint runs/x/best.pt \\
        --data-file hellaswag_val.jsonl --limit 200

Each item is a context and four endings, one of them the real one (label 0..3). The model
reads ``context + " " + ending`` and we add up the cross-entropy of the ending's tokens,
each given everything before it. The ending it finds least surprising is its answer:

    acc       argmin over endings of   sum_j loss_j          (total loss of the ending)
    acc_norm  argmin over endings of   sum_j loss_j / n_k    (mean loss per ending token)

Text is the official JSONL's ``ctx`` as it is and each ending with one space in front,
tokenized apart (the scoring of Karpathy's build-nanogpt ``hellaswag.py``); see
notes/11_hellaswag.md for why, and for published figures to compare with.

For training (``train_gpt2.py --hellaswag-every N``) the API is::

    items = load_items(path_or_None, download_dir, limit)          # list of dicts
    encoded = encode_items(items, tokenizer)                       # optional, once
    result = evaluate_hellaswag(model, tokenizer, encoded, device,
                                dtype=torch.bfloat16, rank=rank, world_size=world_size)
    result["acc"], result["acc_norm"], result["n"]

Under torch.distributed every rank must call ``evaluate_hellaswag`` (it all-reduces): rank
``r`` scores items ``r, r + world_size, ...`` and the counts are summed over the ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import data as data_lib
from .precision import autocast

_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
_devices = import_module("sprints.01_setup_and_basics.results.devices")
_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")

SPLITS = ("train", "val", "test")
HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_{split}.jsonl"
DEFAULT_DOWNLOAD_DIR = Path("data") / "hellaswag"
N_CHOICES = 4  # every official item has exactly four endings


class HellaSwagError(ValueError):
    """A HellaSwag file or setting that cannot be used; the message says what to do."""


# ----- reading the official JSONL ----------------------------------------------------------
def _bad_line(path: Path, line_no: int, what: str) -> HellaSwagError:
    return HellaSwagError(
        f"{path} line {line_no}: {what}. A HellaSwag file has one JSON object per line with "
        "'ctx' (text), 'endings' (4 texts) and 'label' (0-3), as the official "
        "hellaswag_val.jsonl; if the file was downloaded, delete it to download it again"
    )


def _check_item(obj: Any, path: Path, line_no: int) -> dict:
    if not isinstance(obj, dict):
        raise _bad_line(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
    for key in ("ctx", "endings"):
        if key not in obj:
            raise _bad_line(path, line_no, f"no '{key}' field (it has {sorted(obj)[:8]})")
    if not isinstance(obj["ctx"], str) or not obj["ctx"].strip():
        raise _bad_line(path, line_no, "'ctx' must be a non-empty text")
    endings = obj["endings"]
    if (not isinstance(endings, list) or len(endings) != N_CHOICES
            or not all(isinstance(e, str) for e in endings)):
        raise _bad_line(path, line_no, f"'endings' must be a list of {N_CHOICES} texts")
    if obj.get("label") in (None, ""):
        raise _bad_line(path, line_no, "no 'label' (the official test split has no "
                                       "public labels: score --split val instead)")
    label = obj["label"]
    if isinstance(label, str) and label.strip().isdigit():
        label = int(label)  # the Hugging Face copy stores labels as "0".."3"
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < N_CHOICES:
        raise _bad_line(path, line_no, f"'label' must be 0..{N_CHOICES - 1}, got {label!r}")
    return {**obj, "label": label}


def read_items(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """The items of a HellaSwag JSONL file (the first ``limit`` only, if given), checked."""
    path = Path(path)
    if not path.is_file():
        raise HellaSwagError(
            f"no HellaSwag file at {path}; pass an existing hellaswag_val.jsonl with "
            "--data-file PATH, or leave --data-file out to download the official one"
        )
    items: list[dict] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if limit is not None and len(items) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as error:
                    raise _bad_line(path, line_no, f"not JSON ({error.msg})") from None
                items.append(_check_item(obj, path, line_no))
    except UnicodeDecodeError as error:
        raise HellaSwagError(f"{path} is not UTF-8 text ({error.reason} at byte "
                             f"{error.start}); pass the official JSONL with --data-file") from None
    if not items:
        raise HellaSwagError(f"{path} holds no HellaSwag items; pass the official "
                             "hellaswag_val.jsonl with --data-file PATH")
    return items


def download_items_file(split: str = "val", download_dir: str | os.PathLike = DEFAULT_DOWNLOAD_DIR,
                        url: str | None = None, timeout: float = 30.0, retries: int = 3,
                        backoff_s: float = 1.0) -> Path:
    """Fetch the official ``hellaswag_<split>.jsonl`` into ``download_dir`` once (cached)."""
    if split not in SPLITS:
        raise HellaSwagError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    url = url or HELLASWAG_URL.format(split=split)
    dest = Path(download_dir) / f"hellaswag_{split}.jsonl"
    try:
        return data_lib.download(url, dest, timeout=timeout, retries=retries,
                                 backoff_s=backoff_s)
    except data_lib.DataError as error:
        # Keep data.download's "what failed", give the advice that fits a JSONL file.
        reason = str(error).split(" If this machine is offline")[0]
        raise HellaSwagError(
            f"{reason} If this machine is offline, fetch hellaswag_{split}.jsonl where there "
            "is a network (github.com/rowanz/hellaswag, folder data/), copy it here and pass "
            "--data-file PATH/TO/hellaswag_val.jsonl"
        ) from None


def load_items(path: str | os.PathLike | None,
               download_dir: str | os.PathLike = DEFAULT_DOWNLOAD_DIR,
               limit: int | None = None, split: str = "val", url: str | None = None
               ) -> list[dict]:
    """``path`` (a local JSONL) if given, else the official ``split`` downloaded (and cached)
    into ``download_dir``; the first ``limit`` items."""
    if path is None:
        path = download_items_file(split, download_dir, url)
    return read_items(path, limit)


# ----- tokens ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedItem:
    context: list[int]
    endings: list[list[int]]  # N_CHOICES lists of ids, each of " " + ending
    label: int


def encode_items(items: list[dict], tokenizer) -> list[EncodedItem | None]:
    """Token ids of every item; None where the tokenizer cannot encode it (a character
    vocabulary without one of its characters). Encode once and reuse during training."""
    encoded: list[EncodedItem | None] = []
    for item in items:
        texts = [item["ctx"]] + [" " + ending for ending in item["endings"]]
        try:
            if hasattr(tokenizer, "encode_batch"):
                ids = tokenizer.encode_batch(texts)
            else:
                ids = [tokenizer.encode(text) for text in texts]
        except ValueError:  # CharTokenizer: a character outside its vocabulary
            encoded.append(None)
            continue
        encoded.append(EncodedItem(context=ids[0], endings=ids[1:], label=int(item["label"])))
    return encoded


def ending_windows(context: list[int], ending: list[int], block_size: int
                   ) -> list[tuple[list[int], list[int]]]:
    """Model inputs that score every token of ``ending`` after ``context``.

    Returns (x, targets) pairs: the model reads x and its last len(targets) positions
    predict ``targets``. When context + ending fits the block, that is one pair with the
    whole context. Otherwise the context is cut from the left and the ending is scored in
    pieces of at most block_size // 2 tokens, each piece after the block_size tokens just
    before its last target, so every ending token still sees at least half a block.
    """
    if not context:
        raise ValueError("the context must have at least one token to predict the ending from")
    seq = context + ending
    start, end = len(context), len(seq)  # the targets are seq[start:end]
    if end - 1 <= block_size:  # x = seq[:-1] predicts seq[1:]
        return [(seq[:-1], ending)]
    piece = max(1, block_size // 2)
    windows = []
    for first in range(start, end, piece):
        stop = min(first + piece, end)
        x = seq[max(0, stop - 1 - block_size):stop - 1]  # its last position predicts seq[stop-1]
        windows.append((x, seq[first:stop]))
    return windows


# ----- scoring -----------------------------------------------------------------------------
def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    # A DDP wrapper syncs buffers in forward: ranks doing different numbers of forwards would
    # hang, so score with the module inside.
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def _target_losses(model, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (float32) at the positions where targets != -100, in row-major order."""
    scored = targets != -100  # (B, T)
    if hasattr(model, "hidden_states"):  # sprint 8's GPT: project onto the vocabulary only
        hidden = model.hidden_states(idx)  # (B, T, C) at the ending's positions, not the
        logits = model.lm_head(hidden[scored])  # context's: (N, C) -> (N, V)
    else:
        logits = model(idx)[0][scored]  # (B, T, V) -> (N, V)
    return F.cross_entropy(logits.float(), targets[scored], reduction="none")  # (N,)


def score_endings(model: torch.nn.Module, encoded: list[EncodedItem], device: torch.device,
                  dtype: torch.dtype = torch.float32, batch_size: int = 32,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed ending loss and ending length of every (item, ending): two (n_items, 4) tensors.

    All windows of all endings are sorted by length and cut into batches of ``batch_size``
    sequences, right-padded to the longest in the batch; the causal mask keeps padding from
    changing the positions before it, and padded positions are never scored.
    """
    from tqdm import tqdm

    model = _unwrap(model)
    block_size = model.config.block_size
    rows = []  # (x, targets, owner = item * N_CHOICES + ending)
    n_tokens = torch.zeros(len(encoded), N_CHOICES, dtype=torch.long)
    for i, item in enumerate(encoded):
        for k, ending in enumerate(item.endings):
            n_tokens[i, k] = len(ending)
            for x, targets in ending_windows(item.context, ending, block_size):
                rows.append((x, targets, i * N_CHOICES + k))
    rows.sort(key=lambda row: len(row[0]), reverse=True)  # similar lengths pad little
    sums = torch.zeros(len(encoded) * N_CHOICES, dtype=torch.float64)
    was_training = model.training
    model.eval()  # no dropout
    try:
        with torch.inference_mode(), tqdm(total=len(rows), desc="HellaSwag", unit="seq",
                                          disable=not progress) as bar:
            for first in range(0, len(rows), batch_size):
                batch = rows[first:first + batch_size]
                width = len(batch[0][0])  # sorted: the first row is the longest
                idx = torch.zeros(len(batch), width, dtype=torch.long)  # (B, T), 0-padded
                targets = torch.full((len(batch), width), -100, dtype=torch.long)
                for b, (x, tgt, _) in enumerate(batch):
                    idx[b, :len(x)] = torch.tensor(x)
                    targets[b, len(x) - len(tgt):len(x)] = torch.tensor(tgt)
                owners = torch.tensor([owner for _, _, owner in batch])
                owner_of_target = owners[:, None].expand_as(targets)[targets != -100]  # (N,)
                with autocast(device, dtype):
                    losses = _target_losses(model, idx.to(device), targets.to(device))
                sums.index_add_(0, owner_of_target, losses.double().cpu())
                bar.update(len(batch))
    finally:
        model.train(was_training)
    return sums.view(len(encoded), N_CHOICES), n_tokens


def choose_endings(sum_loss: torch.Tensor, n_tokens: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 4) losses -> the answers of acc (lowest sum) and acc_norm (lowest mean), (n,) each."""
    return sum_loss.argmin(dim=1), (sum_loss / n_tokens).argmin(dim=1)


def evaluate_hellaswag(model: torch.nn.Module, tokenizer, items: list, device,
                       dtype: torch.dtype = torch.float32, batch_size: int = 32,
                       rank: int = 0, world_size: int = 1, progress: bool = False) -> dict:
    """acc, acc_norm and counts over ``items`` (dicts from ``load_items``, or the output of
    ``encode_items``, which saves re-tokenizing at every evaluation of a training run).

    Returns {"acc", "acc_norm", "n" (items scored), "correct", "correct_norm", "skipped"
    (items the tokenizer cannot encode)}, summed over all ranks when torch.distributed is
    initialized and world_size > 1. The model is put in eval mode and back.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..world_size-1, got rank {rank} of {world_size}")
    device = torch.device(device)
    mine = items[rank::world_size]
    if mine and isinstance(mine[0], dict):
        mine = encode_items(mine, tokenizer)
    encoded = [item for item in mine if item is not None]
    correct = correct_norm = 0
    if encoded:
        sum_loss, n_tokens = score_endings(model, encoded, device, dtype, batch_size, progress)
        pred, pred_norm = choose_endings(sum_loss, n_tokens)
        labels = torch.tensor([item.label for item in encoded])
        correct, correct_norm = int((pred == labels).sum()), int((pred_norm == labels).sum())
    counts = torch.tensor([len(encoded), correct, correct_norm, len(mine) - len(encoded)],
                          dtype=torch.long, device=device)
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(counts)
    n, correct, correct_norm, skipped = counts.tolist()
    if n == 0 and skipped == 0:
        raise HellaSwagError("no HellaSwag items to score")
    if n == 0:
        raise HellaSwagError(
            f"none of the {skipped} HellaSwag items could be encoded with this model's "
            f"{getattr(tokenizer, 'name', '')} tokenizer (characters outside its vocabulary); "
            "a character model trained on Tiny Shakespeare lacks digits, quotes and brackets, "
            "so score a model with GPT-2's tokenizer, or one trained on a wider text"
        )
    return {"acc": correct / n, "acc_norm": correct_norm / n, "n": n, "correct": correct,
            "correct_norm": correct_norm, "skipped": skipped}


# ----- loading the model to score ----------------------------------------------------------
def tokenizer_from_checkpoint(ckpt: dict):
    """The tokenizer ``train_gpt2.py`` stored in ``ckpt["extra"]["tokenizer"]`` (sprint 8's
    ``tokenizer_from_record``)."""
    try:
        return _tokenizer.tokenizer_from_record((ckpt.get("extra") or {}).get("tokenizer"))
    except ValueError as error:
        raise HellaSwagError(str(error)) from None


def load_model(checkpoint: str | None = None, init_from: str | None = None):
    """(model, tokenizer) from our checkpoint or from a Hugging Face GPT-2 (dir or name)."""
    gpt = import_module("sprints.08_gpt2_assembly.results.model").GPT
    if checkpoint is not None:
        model, ckpt = gpt.from_checkpoint(checkpoint)  # torch.load(weights_only=True)
        tokenizer = tokenizer_from_checkpoint(ckpt)
    else:
        model = gpt.from_pretrained(init_from)
        tokenizer = _tokenizer.gpt2_tokenizer_for(init_from)
    if model.config.vocab_size < tokenizer.vocab_size:
        raise HellaSwagError(
            f"the model's vocabulary ({model.config.vocab_size}) is smaller than its "
            f"tokenizer's ({tokenizer.name}, {tokenizer.vocab_size}); the two do not belong "
            "together"
        )
    return model, tokenizer


# ----- command line ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Score a GPT on HellaSwag (4-way sentence completion): acc picks the "
        "ending with the lowest total loss, acc_norm the lowest mean loss per token.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path,
                        help="a checkpoint written by train_gpt2.py (e.g. runs/x/best.pt)")
    source.add_argument("--init-from",
                        help="a Hugging Face GPT-2 directory (config.json + model.safetensors), "
                        "or a hub name such as gpt2 when online")
    p.add_argument("--data-file", type=Path, default=None,
                   help="a local HellaSwag JSONL (e.g. hellaswag_val.jsonl); default: download "
                   "the official file of --split")
    p.add_argument("--split", choices=SPLITS, default="val",
                   help="which official file to download (test has no public labels)")
    p.add_argument("--data-url", default=None,
                   help="download from here instead of the official address")
    p.add_argument("--download-dir", type=Path, default=DEFAULT_DOWNLOAD_DIR,
                   help="where the download is cached")
    p.add_argument("--limit", type=_arg_types.positive_int, default=None,
                   help="score only the first N items (the whole val split is 10,042)")
    p.add_argument("--batch-size", type=_arg_types.positive_int, default=32,
                   help="sequences per forward pass (4 per item, more for long endings)")
    p.add_argument("--device", choices=_devices.DEVICE_CHOICES, default="auto")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: autocast (weights stay float32)")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "hellaswag",
                   help="hellaswag.json with the results goes here")
    return p


def _write_json(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hellaswag-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = _devices.pick_device(args.device)
    except _devices.DeviceError as error:
        parser.error(str(error))
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        parser.error("--dtype bfloat16: this GPU has no bfloat16; use --dtype float32")
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _fail(f"cannot create --out-dir {args.out_dir} ({error}); pass a writable folder")
    try:
        items = load_items(args.data_file, args.download_dir, args.limit, args.split, args.data_url)
        model, tokenizer = load_model(
            str(args.checkpoint) if args.checkpoint else None, args.init_from)
    except (HellaSwagError, OSError, ValueError) as error:  # CheckpointError is a ValueError
        return _fail(str(error))
    model.to(device)
    print(f"HellaSwag: {len(items)} items, {tokenizer.name} tokenizer, "
          f"{model.num_parameters() / 1e6:.2f}M parameters, {device}, {args.dtype}")
    start = time.perf_counter()
    try:
        result = evaluate_hellaswag(model, tokenizer, items, device, dtype, args.batch_size,
                                    progress=True)
    except HellaSwagError as error:
        return _fail(str(error))
    seconds = time.perf_counter() - start
    n = result["n"]
    if result["skipped"]:
        print(f"warning: {result['skipped']} of {len(items)} items hold characters outside this "
              f"model's character vocabulary and were skipped; the scores are over the {n} "
              "others", file=sys.stderr)
    print(f"acc       {result['acc']:.4f}  ({result['correct']}/{n})  lowest total ending loss")
    print(f"acc_norm  {result['acc_norm']:.4f}  ({result['correct_norm']}/{n})  lowest mean "
          "loss per ending token")
    print(f"items     {n} scored in {seconds:.1f} s ({n / seconds:.1f} items/s)")
    source = (f"checkpoint {args.checkpoint}" if args.checkpoint
              else f"init-from {args.init_from}")
    out = args.out_dir / "hellaswag.json"
    _write_json(out, {
        **result, "model": source, "tokenizer": tokenizer.name,
        "data_file": str(args.data_file
                         or Path(args.download_dir) / f"hellaswag_{args.split}.jsonl"),
        "limit": args.limit, "device": str(device), "dtype": args.dtype,
        "batch_size": args.batch_size, "seconds": round(seconds, 3),
        "items_per_s": round(n / seconds, 2) if seconds > 0 else None,
    })
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
