"""Token shards on disk: writing them (prepare_data) and reading them (training).

A prepared directory holds

    manifest.json       tokenizer, vocab size, dtype, and per shard: file, split, tokens, sha256
    val_000000.bin ...  raw little-endian uint16 token ids, no header (GPT-2's 50257 ids fit)
    train_000000.bin ...

``manifest.json`` is written last, atomically: a directory without it is not (yet) prepared.
A shard is written to ``NAME.partial``, fsynced, then renamed to ``NAME`` (``os.replace`` is
atomic), so a file with a shard's name is always whole.

Reading: ``open_prepared(dir)`` checks everything before training starts and returns
``PreparedData`` whose ``train`` and ``val`` are ``ShardSet`` objects: ``len()`` is the number
of tokens and ``ids[a:b]`` a contiguous slice across shard boundaries, read through a
``numpy.memmap`` that exists only for the duration of the read (see ``ShardSet``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

import numpy as np

from .data_errors import DataError

FORMAT = "token-shards/1"
MANIFEST_NAME = "manifest.json"
PROGRESS_NAME = "progress.json"
VERIFIED_NAME = ".verified.json"  # (size, mtime, sha256) of shards already hashed
SHARD_DTYPE = np.dtype("<u2")
PARTIAL_SUFFIX = ".partial"
PREPARE_COMMAND = "uv run python -m sprints.09_train_gpt2.results.prepare_data"
HASH_BLOCK = 8 << 20


# ----- small file helpers ----------------------------------------------------------------------
def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX; a no-op where directories can't be
    opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def sha256_of(path: Path, limit: int | None = None) -> hashlib._Hash:
    """sha256 of a file's first ``limit`` bytes (all of it by default), read in blocks."""
    digest = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(HASH_BLOCK if left is None else min(HASH_BLOCK, left))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest


# ----- writing -----------------------------------------------------------------------------------
class ShardWriter:
    """Append token ids to a sequence of shards of ``shard_tokens`` tokens each.

    ``name_of(index) -> (split, file name)`` names the shard with that index in this writer's
    sequence. The current shard lives in ``NAME.partial`` and is hashed as it is written; it is
    never held in memory. ``finish_shard()`` fsyncs it and renames it to ``NAME``.
    To resume, pass the ``completed`` records and ``partial_tokens`` from ``state()``: the
    partial file is cut back to that length and its hash recomputed from disk.
    """

    def __init__(self, out_dir: Path, shard_tokens: int, name_of: Callable[[int], tuple],
                 completed: list[dict] | None = None, partial_tokens: int = 0) -> None:
        self.out_dir, self.shard_tokens, self.name_of = Path(out_dir), shard_tokens, name_of
        self.completed: list[dict] = list(completed or [])
        self._file = None
        self._tokens = 0
        self._hash = hashlib.sha256()
        if partial_tokens or self._partial_path().exists():
            self._reopen(partial_tokens)

    def _names(self) -> tuple[str, str]:
        return self.name_of(len(self.completed))

    @property
    def partial_name(self) -> str:
        """File name of the shard being written now."""
        return self._names()[1] + PARTIAL_SUFFIX

    def _partial_path(self) -> Path:
        return self.out_dir / self.partial_name

    def _reopen(self, tokens: int) -> None:
        partial = self._partial_path()
        final = self.out_dir / self._names()[1]
        if not partial.exists() and final.exists():
            # Killed between the rename and the progress record: the shard is whole, but the
            # record says it is in progress, so take it back as the partial file.
            os.replace(final, partial)
        if not partial.exists() and tokens:
            raise DataError(f"{partial} is missing but the progress record says it holds "
                            f"{tokens} tokens; start again with --overwrite")
        nbytes = tokens * SHARD_DTYPE.itemsize
        if partial.exists() and partial.stat().st_size < nbytes:
            raise DataError(f"{partial} is shorter than the progress record says; start again "
                            "with --overwrite")
        self._file = open(partial, "ab" if partial.exists() else "wb")
        self._file.truncate(nbytes)  # anything written after the last record is redone
        self._file.seek(nbytes)
        self._tokens = tokens
        self._hash = sha256_of(partial, nbytes)

    @property
    def room(self) -> int:
        return self.shard_tokens - self._tokens

    def append(self, ids: memoryview) -> int:
        """Write as many of ``ids`` (uint16 bytes) as fit in the current shard; return how many
        tokens were taken. When the shard is full (``room == 0``) call ``finish_shard``."""
        if self._file is None:
            self._file = open(self._partial_path(), "wb")
        take = min(self.room, len(ids) // SHARD_DTYPE.itemsize)
        chunk = ids[:take * SHARD_DTYPE.itemsize]
        self._file.write(chunk)
        self._hash.update(chunk)
        self._tokens += take
        return take

    def sync(self) -> None:
        """Flush the current partial shard to disk (before a progress record names its
        length)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def finish_shard(self) -> dict | None:
        """Close the current shard under its final name; None if it holds no tokens."""
        if self._file is None:
            return None
        self.sync()
        self._file.close()
        self._file = None
        split, name = self._names()
        partial = self.out_dir / (name + PARTIAL_SUFFIX)
        if self._tokens == 0:
            partial.unlink()
            return None
        os.replace(partial, self.out_dir / name)
        fsync_dir(self.out_dir)
        record = {"file": name, "split": split, "tokens": self._tokens,
                  "sha256": self._hash.hexdigest()}
        self.completed.append(record)
        self._tokens, self._hash = 0, hashlib.sha256()
        return record

    def state(self) -> dict:
        return {"completed": self.completed, "partial_tokens": self._tokens}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# ----- reading -----------------------------------------------------------------------------------
class ShardSet:
    """One split's shards as one long sequence of token ids: ``len()`` and ``ids[a:b]``.

    Reads go through ``numpy.memmap``. Pages of a mapped file that have been read count in
    the process's resident memory (RSS) for as long as the mapping lives, so a mapping kept
    open for a whole run over a 17 GB split would show up to 17 GB of RSS (clean page-cache
    pages the kernel may drop, but counted against memory limits and alarming in every
    monitor). Here each read maps the shard, copies the slice out and drops the mapping, as
    nanoGPT re-creates its memmap for every batch; the page cache still keeps hot data fast.
    ``keep_mapped=True`` keeps the mappings instead (benchmarks/bench_prepare_data.py
    measures both).
    """

    def __init__(self, paths: list[Path], tokens: list[int], keep_mapped: bool = False) -> None:
        self.paths = [Path(p) for p in paths]
        self.tokens = [int(n) for n in tokens]
        self.starts = np.concatenate([[0], np.cumsum(self.tokens, dtype=np.int64)])
        self.keep_mapped = keep_mapped
        self._maps: dict[int, np.memmap] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _map(self, shard: int) -> np.memmap:
        if shard in self._maps:
            return self._maps[shard]
        mapped = np.memmap(self.paths[shard], dtype=SHARD_DTYPE, mode="r",
                           shape=(self.tokens[shard],))
        if self.keep_mapped:
            self._maps[shard] = mapped
        return mapped

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("ShardSet supports contiguous slices ids[a:b] only")
        a, b, step = index.indices(len(self))
        if step != 1:
            raise TypeError("ShardSet supports contiguous slices ids[a:b] only (no step)")
        if b <= a:
            return np.empty(0, dtype=SHARD_DTYPE)
        first = int(np.searchsorted(self.starts, a, side="right")) - 1
        last = int(np.searchsorted(self.starts, b - 1, side="right")) - 1
        parts = []
        for shard in range(first, last + 1):
            lo = max(a, self.starts[shard]) - self.starts[shard]
            hi = min(b, self.starts[shard + 1]) - self.starts[shard]
            parts.append(np.array(self._map(shard)[lo:hi]))  # np.array: copy, then unmap
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """``ids[s:s + length]`` for every s in ``starts``, as one (len(starts), length) array;
        equal to ``array[starts[:, None] + np.arange(length)]`` on the concatenated ids."""
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) and (starts.min() < 0 or starts.max() + length > len(self)):
            raise IndexError(f"windows of {length} tokens from {starts.min()}..{starts.max()} "
                             f"run outside the {len(self)} tokens of this split")
        out = np.empty((len(starts), length), dtype=SHARD_DTYPE)
        shard_of = np.searchsorted(self.starts, starts, side="right") - 1
        inside = starts + length <= self.starts[shard_of + 1]
        for shard in np.unique(shard_of[inside]):
            rows = np.flatnonzero(inside & (shard_of == shard))
            local = starts[rows] - self.starts[shard]
            # (rows, 1) + (length,) -> (rows, length) indices into this shard
            out[rows] = self._map(int(shard))[local[:, None] + np.arange(length)]
        for row in np.flatnonzero(~inside):  # the rare window that spans two shards
            out[row] = self[int(starts[row]):int(starts[row]) + length]
        return out


def _prepare_hint(directory: Path) -> str:
    return f"make one with `{PREPARE_COMMAND} --input YOUR_TEXT --out-dir {directory}`"


@dataclass
class PreparedData:
    """A checked prepared directory: its manifest and the two splits."""

    directory: Path
    manifest: dict
    train: ShardSet
    val: ShardSet
    # {"type": "gpt2"}, {"type": "char", "chars": ...} or {"type": "bpe", "json": ...}
    tokenizer: dict = field(default_factory=dict)
    vocab_size: int = 0
    eot_token_id: int | None = None

    def make_tokenizer(self):
        """Sprint 8's tokenizer object for these ids (for decoding samples)."""
        lib = import_module("sprints.08_gpt2_assembly.results.tokenizer")
        if self.tokenizer["type"] in ("char", "bpe"):
            return lib.tokenizer_from_record(self.tokenizer)
        return lib.get_tokenizer("gpt2")

    def check_fits(self, model_vocab_size: int, tokenizer: str | None = None) -> None:
        """Raise DataError unless a model with ``model_vocab_size`` output rows (and the
        ``--tokenizer`` the user asked for, if any) can train on these ids."""
        kind = self.tokenizer["type"]
        lib = import_module("sprints.08_gpt2_assembly.results.tokenizer")
        if tokenizer is not None and kind == "bpe" and lib.is_tokenizer_file(tokenizer):
            if lib.TokenizerJSON.from_file(tokenizer).to_dict() != self.tokenizer:
                raise DataError(
                    f"{self.directory} was prepared with another tokenizer.json than "
                    f"{tokenizer}; leave --tokenizer out to train with the one it was "
                    f"prepared with, or prepare the text again with `{PREPARE_COMMAND} "
                    f"--tokenizer {tokenizer} ...`")
        elif tokenizer is not None and tokenizer != kind:
            raise DataError(
                f"{self.directory} was prepared with the {kind} tokenizer but --tokenizer "
                f"{tokenizer} was asked for; pass --tokenizer {kind}, or prepare the text "
                f"again with `{PREPARE_COMMAND} --tokenizer {tokenizer} ...`")
        if model_vocab_size < self.vocab_size:
            raise DataError(
                f"{self.directory} holds {kind} token ids up to {self.vocab_size - 1} "
                f"(vocab size {self.vocab_size}) but the model has only {model_vocab_size} "
                "token embeddings; use a model with a vocabulary of at least "
                f"{self.vocab_size}, or prepare the data with the model's tokenizer")


def _read_manifest(directory: Path) -> dict:
    if not directory.is_dir():
        raise DataError(f"--data-dir {directory} is not a directory; {_prepare_hint(directory)}")
    path = directory / MANIFEST_NAME
    if not path.is_file():
        if (directory / PROGRESS_NAME).is_file():
            raise DataError(f"{directory} is not finished: prepare_data was interrupted there. "
                            "Run the same prepare_data command again to resume it.")
        raise DataError(f"{directory} has no {MANIFEST_NAME}, so it is not a prepared "
                        f"directory; {_prepare_hint(directory)}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path} cannot be read ({error}); prepare the directory again "
                        "with prepare_data --overwrite") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a {FORMAT} manifest (found format "
                        f"{manifest.get('format') if isinstance(manifest, dict) else None!r}); "
                        "prepare the directory again with prepare_data")
    missing = {"tokenizer", "vocab_size", "dtype", "shards", "total_tokens"} - manifest.keys()
    if missing:
        raise DataError(f"{path} lacks {sorted(missing)}; prepare the directory again")
    if manifest["dtype"] != "uint16":
        raise DataError(f"{path} says dtype {manifest['dtype']!r}; this reader knows uint16")
    return manifest


def _load_verified(directory: Path) -> dict:
    try:
        cache = json.loads((directory / VERIFIED_NAME).read_text(encoding="utf-8"))
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def record_verified(directory: Path, shards: list[dict]) -> None:
    """Remember that these shards hashed right at their current size and mtime."""
    cache = _load_verified(directory)
    for shard in shards:
        stat = (directory / shard["file"]).stat()
        cache[shard["file"]] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                "sha256": shard["sha256"]}
    try:
        write_json_atomic(directory / VERIFIED_NAME, cache)
    except OSError:
        pass  # a read-only directory: the next start hashes again, nothing worse


def verify_shards(directory: Path, shards: list[dict], mode: str = "cached") -> None:
    """Check every shard exists, has ``tokens * 2`` bytes, and has the manifest's sha256.

    ``mode``: "full" hashes every shard; "cached" (the default) skips a shard whose size and
    mtime are those it had when it last hashed right (``.verified.json``), so a 17 GB corpus
    is hashed once, not at every start, while truncation, replacement or an edit (each
    changes the size or mtime) is still caught; "size" checks sizes only.
    """
    if mode not in ("full", "cached", "size"):
        raise ValueError(f"verify mode must be 'full', 'cached' or 'size', not {mode!r}")
    cache = _load_verified(directory) if mode == "cached" else {}
    newly = []
    for shard in shards:
        path = directory / shard["file"]
        if not path.is_file():
            raise DataError(f"shard {path} listed in {MANIFEST_NAME} is missing; restore it, "
                            "or prepare the directory again with prepare_data --overwrite")
        stat = path.stat()
        expected = int(shard["tokens"]) * SHARD_DTYPE.itemsize
        if stat.st_size != expected:
            raise DataError(f"shard {path} has {stat.st_size} bytes but {MANIFEST_NAME} says "
                            f"{shard['tokens']} tokens ({expected} bytes): it is truncated or "
                            "not this directory's file; restore it or prepare again with "
                            "--overwrite")
        if mode == "size":
            continue
        seen = cache.get(shard["file"], {})
        if (seen.get("size"), seen.get("mtime_ns"), seen.get("sha256")) == (
                stat.st_size, stat.st_mtime_ns, shard["sha256"]):
            continue
        if sha256_of(path).hexdigest() != shard["sha256"]:
            raise DataError(f"shard {path} does not have the sha256 {MANIFEST_NAME} records: "
                            "its contents changed or are damaged; restore it or prepare the "
                            "directory again with --overwrite")
        newly.append(shard)
    if newly and mode == "cached":
        record_verified(directory, newly)


def open_prepared(directory: str | os.PathLike, verify: str = "cached",
                  keep_mapped: bool = False) -> PreparedData:
    """Open and check a directory written by prepare_data; raises DataError with what to do.

    ``verify``: see ``verify_shards``. Under torchrun, open it on rank 0 first and the other
    ranks after a barrier: they then find every shard in the verified cache.
    """
    directory = Path(directory)
    manifest = _read_manifest(directory)
    shards = manifest["shards"]
    verify_shards(directory, shards, verify)
    by_split = {"train": [], "val": []}
    for shard in shards:
        if shard.get("split") not in by_split:
            raise DataError(f"{directory / MANIFEST_NAME}: shard {shard.get('file')} has split "
                            f"{shard.get('split')!r}; expected 'train' or 'val'")
        by_split[shard["split"]].append(shard)
    if not by_split["val"]:
        raise DataError(f"{directory} has no validation shards; prepare it again with "
                        "--val-fraction F (e.g. 0.01) or --val-shards N")
    if not by_split["train"]:
        raise DataError(f"{directory} has only validation shards; prepare it again with a "
                        "smaller --shard-tokens, --val-shards or --val-fraction")

    def shard_set(split: str) -> ShardSet:
        chosen = by_split[split]
        return ShardSet([directory / s["file"] for s in chosen], [s["tokens"] for s in chosen],
                        keep_mapped=keep_mapped)

    return PreparedData(directory=directory, manifest=manifest, train=shard_set("train"),
                        val=shard_set("val"), tokenizer=manifest["tokenizer"],
                        vocab_size=int(manifest["vocab_size"]),
                        eot_token_id=manifest.get("eot_token_id"))
