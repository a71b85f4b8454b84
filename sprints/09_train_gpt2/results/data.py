"""Text data for language-model training: download, read, split, tokenize once, sample batches.

Batches are a pure function of ``(seed, step, micro_step)``: no hidden iterator state, so a run
that is killed and resumed from step ``k`` draws exactly the batches an uninterrupted run draws,
and every data-parallel rank can cut its own slice of the same global batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data_errors import DataError  # re-exported: train_gpt2 and the tests use data.DataError

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
DEFAULT_DATA_FILE = Path("data") / "tinyshakespeare" / "input.txt"


def download(
    url: str = TINY_SHAKESPEARE_URL,
    dest: str | Path = DEFAULT_DATA_FILE,
    timeout: float = 10.0,
    retries: int = 3,
    backoff_s: float = 1.0,
    offline_hint: str = "pass a local UTF-8 text file with --data-file PATH",
) -> Path:
    """Download ``url`` to ``dest`` once (atomically); a present, non-empty file is reused.
    ``offline_hint`` ends the error message: the calling tool's way to use local data."""
    import requests  # imported here: only the download path needs it

    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            response = requests.get(url, timeout=timeout)
            response.raise_for_status()
            # Temp file + os.replace: an interrupted download never leaves a half file behind.
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
            with os.fdopen(fd, "wb") as f:
                f.write(response.content)
            os.replace(tmp, dest)
            return dest
        except requests.RequestException as error:
            last_error = error
            if attempt < retries:
                time.sleep(backoff_s * 2 ** (attempt - 1))
    raise DataError(
        f"Could not download {url} after {retries} tries ({last_error}). "
        f"If this machine is offline, {offline_hint}."
    )


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, with errors that say what to do."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist; pass an existing UTF-8 text file "
                        "with --data-file PATH (or omit it to download Tiny Shakespeare).")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"Data file {path} is empty; give --data-file a file with text in it.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"Data file {path} is not UTF-8 text (byte {error.start}: {error.reason}); "
            "convert it (e.g. `iconv -t UTF-8`) or pass another --data-file."
        ) from None


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """First ``1 - val_fraction`` of the characters for training, the rest for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = int(len(text) * (1.0 - val_fraction))
    return text[:n], text[n:]


def tokenizer_fingerprint(tokenizer) -> str:
    """A string that changes whenever the tokenizer would map text to different ids."""
    ident = {"name": tokenizer.name, "vocab_size": tokenizer.vocab_size}
    if hasattr(tokenizer, "to_dict"):
        ident["vocab"] = tokenizer.to_dict()
    return json.dumps(ident, sort_keys=True, default=str)


def encode_cached(tokenizer, text: str, cache_dir: str | Path | None) -> np.ndarray:
    """Token ids of ``text`` as uint16, cached on disk under tokenizer + content hash."""
    if tokenizer.vocab_size > np.iinfo(np.uint16).max + 1:
        raise DataError(f"vocab_size {tokenizer.vocab_size} does not fit in uint16 ids; use a "
                        "tokenizer with at most 65,536 tokens")
    key = hashlib.sha256()
    key.update(tokenizer_fingerprint(tokenizer).encode())
    key.update(b"\0")
    key.update(text.encode("utf-8"))
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{tokenizer.name}-{key.hexdigest()[:24]}.npy"
        if path.is_file():
            try:
                return np.load(path)
            except (OSError, ValueError):
                pass  # a damaged cache file is just re-made below
    ids = np.asarray(tokenizer.encode(text), dtype=np.uint16)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ids-", suffix=".npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, ids)
            os.replace(tmp, path)
        except OSError as error:  # the cache only saves time: train on without it
            print(f"warning: could not cache token ids in {path.parent} ({error}); "
                  "continuing without the cache", file=sys.stderr)
    return ids


@dataclass
class TokenData:
    train: np.ndarray  # uint16 ids
    val: np.ndarray

    def check_block_size(self, block_size: int) -> None:
        for name, ids in (("training", self.train), ("validation", self.val)):
            if len(ids) < block_size + 1:
                raise DataError(
                    f"The {name} split has {len(ids)} tokens but one training window needs "
                    f"block_size + 1 = {block_size + 1}; use a longer text file or a smaller "
                    "--block-size."
                )


def batch_offsets(n_tokens: int, block_size: int, batch_size: int,
                  seed: int, step: int, micro_step: int = 0) -> np.ndarray:
    """Start positions of the global batch for one micro-step: a function of its arguments only."""
    rng = np.random.default_rng([seed, step, micro_step])
    return rng.integers(0, n_tokens - block_size, size=batch_size)


def read_windows(ids, starts: np.ndarray, length: int) -> np.ndarray:
    """``ids[s:s + length]`` for each start, as one (len(starts), length) array. ``ids`` is a
    NumPy array or a ``shards.ShardSet`` (memory-mapped shards, read only where needed)."""
    if isinstance(ids, np.ndarray):
        # (b, 1) + (length,) -> (b, length) indices
        return ids[starts[:, None] + np.arange(length)]
    return ids.windows(starts, length)


def get_batch(ids, block_size: int, batch_size: int, seed: int, step: int,
              micro_step: int = 0, rank: int = 0, world_size: int = 1
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of the global batch: inputs x and next-token targets y, both (b, T).

    ``ids``: a NumPy array or a ``shards.ShardSet``; both give the same batch for the same ids,
    so resume and data-parallel equality hold for prepared shards too.
    """
    starts = batch_offsets(len(ids), block_size, batch_size, seed, step, micro_step)
    per_rank = batch_size // world_size
    starts = starts[rank * per_rank:(rank + 1) * per_rank]
    # (b, T+1) windows; x is each window minus its last token, y minus its first.
    windows = torch.from_numpy(read_windows(ids, starts, block_size + 1).astype(np.int64))
    return windows[:, :-1], windows[:, 1:]


def iter_eval_batches(ids, block_size: int, batch_size: int, max_tokens: int | None = None):
    """Yield (x, y) batches that cover the split with non-overlapping windows of ``block_size``,
    reading only one batch at a time: every token but the first is predicted exactly once.

    ``ids`` is anything with ``len()`` and contiguous slicing (a NumPy array, or a set of
    memory-mapped shards), so a split of any size is evaluated in bounded memory.
    ``max_tokens`` evaluates only the first ``max_tokens`` predictions (``--eval-tokens``).
    Full batches are (b, T); the leftover tail comes last as (1, t) with t < T.
    """
    n = len(ids) if max_tokens is None else min(len(ids), max_tokens + 1)
    n_full = (n - 1) // block_size
    for first in range(0, n_full, batch_size):
        last = min(first + batch_size, n_full)
        chunk = np.asarray(ids[first * block_size:last * block_size + 1]).astype(np.int64)
        chunk = torch.from_numpy(chunk)
        # (rows * T + 1,) -> inputs and targets shifted by one, each (rows, T)
        yield (chunk[:-1].view(last - first, block_size),
               chunk[1:].view(last - first, block_size))
    used = n_full * block_size
    if used + 1 < n:
        tail = torch.from_numpy(np.asarray(ids[used:n]).astype(np.int64))
        yield tail[:-1][None], tail[1:][None]
