"""Tokenize a corpus of any size into uint16 token shards plus manifest.json, for training.

    uv run python -m sprints.09_train_gpt2.results.prepare_data            # Tiny Shakespeare
    uv run python -m sprints.09_train_gpt2.results.prepare_data --input corpus/ --workers 8 \\
        --val-fraction 0.001 --out-dir data/prepared/corpus-gpt2
    uv run python -m sprints.09_train_gpt2.results.prepare_data \\
        --hf-dataset HuggingFaceFW/fineweb-edu --hf-config sample-10BT --val-shards 1

The main process streams documents as pieces (``corpus_readers``), routes each to the train
or validation stream, and writes ids to that stream's current shard; ``--workers`` processes
tokenize the pieces in order. Memory stays bounded: pieces are at most about a megabyte of
text, a bounded number of tasks is in flight, and shards are written as they grow, never held.
After each finished shard a progress record says where in the input the next shard begins, so
a run killed at any moment (even kill -9) resumes from its last whole shard when started again
with the same options, and produces the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path

from tqdm import tqdm

from .corpus_readers import Cursor, Piece, open_corpus
from .data_errors import DataError
from .safe_cuts import MAX_PIECE_CHARS, PIECE_CHARS
from .shards import (
    FORMAT,
    MANIFEST_NAME,
    PROGRESS_NAME,
    VERIFIED_NAME,
    ShardWriter,
    record_verified,
    write_json_atomic,
)
from .token_encoders import encode_pieces, init_worker, limit_threads, make_encoder

_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
_tokenizer_lib = import_module("sprints.08_gpt2_assembly.results.tokenizer")

TASK_CHARS = 1 << 20  # characters of text per worker task (many small documents, or pieces)
TASK_PIECES = 4096
IN_FLIGHT_PER_WORKER = 2  # tasks queued per worker: keeps workers busy, memory bounded
SHARD_FILE = re.compile(r"(train|val)_\d{6}\.bin(\.partial)?")
GPT2 = {"type": "gpt2"}
GPT2_VOCAB_SIZE, GPT2_EOT = 50257, 50256


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    value = _arg_types._number(text, float)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive); got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("input (default: Tiny Shakespeare, downloaded once to data/)")
    src.add_argument("--input", type=Path, default=None,
                     help="a text file (one document), a .jsonl/.json (JSON Lines) or .parquet "
                          "file, or a directory of such files (read recursively)")
    src.add_argument("--hf-dataset", default=None,
                     help="a Hugging Face dataset name, streamed with the datasets library "
                          "(needs a network)")
    src.add_argument("--hf-config", default=None, help="the dataset's configuration")
    src.add_argument("--split", default="train", help="the dataset's split")
    src.add_argument("--text-field", default="text",
                     help="JSONL key / Parquet column / dataset field holding the text")
    out = p.add_argument_group("output")
    out.add_argument("--out-dir", type=Path, default=None,
                     help="where shards and manifest.json go (default: "
                          "data/prepared/<input name>-<tokenizer>)")
    out.add_argument("--tokenizer", type=_tokenizer_lib.tokenizer_arg, default="gpt2",
                     help="gpt2: GPT-2's BPE, end-of-text after every document; char: one id "
                          "per character (a first pass collects the characters); or the path "
                          "of a tokenizer.json byte-level BPE (its <|endoftext|>, if it has "
                          "one, after every document; the manifest records the whole file)")
    out.add_argument("--shard-tokens", type=_arg_types.positive_int, default=100_000_000,
                     help="tokens per shard (the last shard of each split may be shorter)")
    val = out.add_mutually_exclusive_group()
    val.add_argument("--val-fraction", type=open_fraction, default=None,
                     help="share of documents (long documents: of their ~16K-character "
                          "pieces) routed, evenly spread, to separate validation shards "
                          "(default 0.1; for billions of tokens use e.g. 0.001)")
    val.add_argument("--val-shards", type=_arg_types.positive_int, default=None,
                     help="instead: the first N shards of the one stream are validation "
                          "(build-nanogpt's FineWeb convention)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace shards prepared earlier in --out-dir with other options")
    run = p.add_argument_group("run")
    run.add_argument("--workers", type=_arg_types.positive_int, default=1,
                     help="tokenizing processes (1: tokenize in the main process)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


# ----- where things go ---------------------------------------------------------------------------
def is_validation(unit: int, fraction: float) -> bool:
    """Unit i is validation iff floor((i+1)F) > floor(iF): exactly floor(nF) of the first n
    units, one every 1/F units, so validation is spread evenly through the corpus."""
    return math.floor((unit + 1) * fraction) > math.floor(unit * fraction)


def validation_rule(args) -> dict:
    if args.val_shards is not None:
        return {"rule": "first_shards", "shards": args.val_shards}
    return {"rule": "fraction", "fraction": 0.1 if args.val_fraction is None
            else args.val_fraction}


def stream_namers(rule: dict) -> dict:
    """Output streams and how each names its k-th shard: (split, file name)."""
    if rule["rule"] == "first_shards":
        n = rule["shards"]
        return {"all": lambda k: ("val", f"val_{k:06d}.bin") if k < n
                else ("train", f"train_{k - n:06d}.bin")}
    return {"train": lambda k: ("train", f"train_{k:06d}.bin"),
            "val": lambda k: ("val", f"val_{k:06d}.bin")}


def default_out_dir(args) -> Path:
    if args.hf_dataset is not None:
        name = f"{args.hf_dataset.replace('/', '_')}-{args.split}"
    elif args.input is not None:
        name = args.input.stem if args.input.is_file() else args.input.resolve().name
    else:
        name = "tinyshakespeare"
    tokenizer = (Path(args.tokenizer).stem if _tokenizer_lib.is_tokenizer_file(args.tokenizer)
                 else args.tokenizer)
    return Path("data") / "prepared" / f"{name}-{tokenizer}"


# ----- the output directory's state --------------------------------------------------------------
def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read ({error}); pass --overwrite to start "
                        "again") from None


def clear_prepared(out_dir: Path) -> None:
    """Remove what prepare_data writes (and nothing else) from ``out_dir``."""
    for path in out_dir.iterdir():
        if path.name in (MANIFEST_NAME, PROGRESS_NAME, VERIFIED_NAME) or \
                SHARD_FILE.fullmatch(path.name):
            path.unlink()


def check_out_dir(out_dir: Path, job: dict, overwrite: bool) -> tuple[dict | None, dict | None]:
    """Returns (manifest of the same finished job, progress record of the same unfinished
    job); raises DataError for a directory that holds something else, unless ``overwrite``."""
    if not out_dir.exists():
        return None, None
    if not out_dir.is_dir():
        raise DataError(f"--out-dir {out_dir} is a file; pass a directory")
    manifest = read_json(out_dir / MANIFEST_NAME)
    progress = read_json(out_dir / PROGRESS_NAME)
    ours = [p.name for p in out_dir.iterdir() if SHARD_FILE.fullmatch(p.name)]
    if manifest is not None and manifest.get("job") == job and not overwrite:
        (out_dir / PROGRESS_NAME).unlink(missing_ok=True)  # killed just before removing it
        return manifest, None
    if progress is not None and progress.get("job") == job and not overwrite:
        return None, progress
    if overwrite:
        clear_prepared(out_dir)
        return None, None
    if manifest is not None or progress is not None:
        what = "finished data" if manifest is not None else "an unfinished run"
        raise DataError(f"{out_dir} holds {what} prepared from other inputs or options; pass "
                        "another --out-dir, or --overwrite to replace it")
    if ours:
        raise DataError(f"{out_dir} has shard files ({ours[0]}, ...) but no {MANIFEST_NAME} or "
                        f"{PROGRESS_NAME}; pass another --out-dir, or --overwrite to replace "
                        "them")
    return None, None


# ----- tokenizing in order, with bounded memory --------------------------------------------------
def tasks_of(pieces: Iterator[Piece]) -> Iterator[list[Piece]]:
    task, chars = [], 0
    for piece in pieces:
        task.append(piece)
        chars += len(piece.text)
        if chars >= TASK_CHARS or len(task) >= TASK_PIECES:
            yield task
            task, chars = [], 0
    if task:
        yield task


def encoded_tasks(pieces: Iterator[Piece], spec: dict, workers: int):
    """Yield (task, (ids bytes, tokens per piece)) in input order.

    Pool.imap would do the ordering, but its feeder thread reads the input iterator as fast
    as it can, so a 17 GB corpus would pile up in memory; apply_async with a deque of at most
    ``IN_FLIGHT_PER_WORKER * workers`` pending tasks keeps order and bounds what is read ahead.
    """
    if workers == 1:
        encoder = make_encoder(spec)
        for task in tasks_of(pieces):
            yield task, encode_pieces([p.text for p in task], [p.last for p in task], encoder)
        return
    # spawn: fresh interpreters, safe with the Rust thread pools a fork would copy mid-use
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=init_worker, initargs=(spec,)) as pool:
        pending: deque = deque()
        for task in tasks_of(pieces):
            pending.append((task, pool.apply_async(
                encode_pieces, ([p.text for p in task], [p.last for p in task]))))
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                task, result = pending.popleft()
                yield task, result.get()
        while pending:
            task, result = pending.popleft()
            yield task, result.get()


def char_vocabulary(corpus, progress: bool) -> dict:
    """The character tokenizer needs every character first: one pass over the input."""
    chars: set[str] = set()
    for piece in tqdm(corpus.iter_pieces(), desc="collecting characters", unit=" pieces",
                      disable=not progress):
        chars.update(piece.text)
    if not chars:
        raise DataError("the input has no text to build a character vocabulary from")
    if len(chars) > 1 << 16:
        raise DataError(f"the input has {len(chars)} distinct characters, more than uint16 ids "
                        "can hold; use --tokenizer gpt2")
    return {"type": "char", "chars": "".join(sorted(chars))}


def bpe_spec(path: str) -> dict:
    """The manifest's record of a tokenizer.json BPE: its whole text (the data needs no file
    beside it), refused when its ids do not fit the uint16 shards."""
    try:
        tokenizer = _tokenizer_lib.TokenizerJSON.from_file(path)
    except (OSError, ValueError) as error:
        raise DataError(str(error)) from None
    if tokenizer.vocab_size > 1 << 16:
        raise DataError(f"{path} has {tokenizer.vocab_size:,} tokens, more than the 65,536 "
                        "ids that uint16 shards can hold; train a tokenizer with "
                        "vocab_size <= 65536")
    return tokenizer.to_dict()


def spec_vocabulary(spec: dict) -> tuple[int, int | None]:
    """(vocab size, end-of-text id or None) of a tokenizer record."""
    if spec["type"] == "gpt2":
        return GPT2_VOCAB_SIZE, GPT2_EOT
    if spec["type"] == "char":
        return len(spec["chars"]), None
    tokenizer = _tokenizer_lib.tokenizer_from_record(spec)
    return tokenizer.vocab_size, tokenizer.eot_token_id


# ----- the run -----------------------------------------------------------------------------------
def prepare(corpus, out_dir: Path, tokenizer: str = "gpt2", shard_tokens: int = 100_000_000,
            validation: dict | None = None, workers: int = 1, overwrite: bool = False,
            progress: bool = True) -> dict:
    """Prepare ``corpus`` into ``out_dir``; returns the manifest (also when it was already
    prepared with the same options)."""
    validation = validation or {"rule": "fraction", "fraction": 0.1}
    limit_threads()
    bpe = bpe_spec(tokenizer) if _tokenizer_lib.is_tokenizer_file(tokenizer) else None
    # A tokenizer file is identified by its content, so a resume with an edited file starts
    # again instead of mixing two vocabularies.
    job_tokenizer = tokenizer if bpe is None else {
        "type": "bpe", "sha256": _tokenizer_lib.TokenizerJSON(bpe["json"]).sha256}
    job = {"format": FORMAT, "tokenizer": job_tokenizer, "shard_tokens": shard_tokens,
           "validation": validation, "source": corpus.description,
           "piece_chars": PIECE_CHARS, "max_piece_chars": MAX_PIECE_CHARS}
    done, record = check_out_dir(out_dir, job, overwrite)
    if done is not None:
        print(f"{out_dir} already holds this data ({done['total_tokens']:,} tokens); nothing "
              "to do")
        return done
    out_dir.mkdir(parents=True, exist_ok=True)
    if record is None:
        if bpe is not None:
            spec = bpe
        else:
            spec = GPT2 if tokenizer == "gpt2" else char_vocabulary(corpus, progress)
        record = {"job": job, "tokenizer": spec, "cursor": Cursor().to_dict(), "skip": 0,
                  "unit": 0, "documents": 0, "forced_cuts": 0, "streams": {}}
        write_json_atomic(out_dir / PROGRESS_NAME, record)
    else:
        print(f"resuming in {out_dir} from the last whole shard")
    spec = record["tokenizer"]
    namers = stream_namers(validation)
    writers = {name: ShardWriter(out_dir, shard_tokens, namer,
                                 **record["streams"].get(name, {}))
               for name, namer in namers.items()}
    # Shard files that no record names are from after the last progress record: redone.
    keep = {s["file"] for w in writers.values() for s in w.completed}
    keep |= {w.partial_name for w in writers.values()}
    for path in out_dir.iterdir():
        if SHARD_FILE.fullmatch(path.name) and path.name not in keep:
            path.unlink()

    fraction = validation.get("fraction")
    unit, documents, forced = record["unit"], record["documents"], record["forced_cuts"]
    skip = record["skip"]
    t0 = time.perf_counter()
    tokens_done = 0

    def save_progress(cursor: Cursor, offset: int) -> None:
        for w in writers.values():
            w.sync()  # the lengths the record names must be on disk first
        write_json_atomic(out_dir / PROGRESS_NAME, {
            "job": job, "tokenizer": spec, "cursor": cursor.to_dict(), "skip": offset,
            "unit": unit, "documents": documents, "forced_cuts": forced,
            "streams": {name: w.state() for name, w in writers.items()}})

    bar = tqdm(unit="tok", unit_scale=True, desc="tokenizing", disable=not progress)
    pieces = corpus.iter_pieces(Cursor.from_dict(record["cursor"]))
    try:
        for task, (data, counts) in encoded_tasks(pieces, spec, workers):
            view, pos = memoryview(data), 0
            for piece, n in zip(task, counts.tolist(), strict=True):
                ids = view[pos * 2:(pos + n) * 2]  # uint16: 2 bytes per token
                pos += n
                if fraction is None:
                    stream = "all"
                else:
                    stream = "val" if is_validation(unit, fraction) else "train"
                writer = writers[stream]
                offset, skip = skip, 0  # after a resume, the first piece's written part
                while offset < n:
                    offset += writer.append(ids[offset * 2:])
                    if writer.room == 0:
                        writer.finish_shard()
                        save_progress(piece.cursor, offset)
                unit += 1
                documents += piece.last
                forced += piece.forced
            tokens_done += int(counts.sum())
            bar.update(int(counts.sum()))
        bar.close()
        for w in writers.values():
            w.finish_shard()
    finally:
        for w in writers.values():
            w.close()
    elapsed = time.perf_counter() - t0

    shards = [s for w in writers.values() for s in w.completed]
    shards.sort(key=lambda s: (s["split"] != "val", s["file"]))
    train_tokens = sum(s["tokens"] for s in shards if s["split"] == "train")
    val_tokens = sum(s["tokens"] for s in shards if s["split"] == "val")
    vocab_size, eot_token_id = spec_vocabulary(spec)
    manifest = {
        "format": FORMAT, "tokenizer": spec, "vocab_size": vocab_size,
        "eot_token_id": eot_token_id,
        "dtype": "uint16", "byte_order": "little", "shard_tokens": shard_tokens,
        "total_tokens": train_tokens + val_tokens, "train_tokens": train_tokens,
        "val_tokens": val_tokens, "validation": validation, "shards": shards,
        "documents": documents, "pieces": unit, "forced_cuts": forced,
        "source": corpus.description, "job": job,
    }
    record_verified(out_dir, shards)  # just hashed while writing: the first start skips it
    write_json_atomic(out_dir / MANIFEST_NAME, manifest)
    (out_dir / PROGRESS_NAME).unlink()
    rate = tokens_done / elapsed if elapsed > 0 else float("nan")
    print(f"wrote {len(shards)} shards, {manifest['total_tokens']:,} tokens "
          f"({train_tokens:,} train, {val_tokens:,} validation) from {documents:,} documents "
          f"to {out_dir} in {elapsed:.1f} s ({rate:,.0f} tokens/s this run)")
    if forced:
        print(f"warning: {forced} piece(s) had no safe cut within {MAX_PIECE_CHARS:,} characters "
              "and were cut anyway; ids there may differ from tokenizing the whole text",
              file=sys.stderr)
    if not val_tokens or not train_tokens:
        print("warning: the " + ("validation" if not val_tokens else "training") + " split is "
              "empty, so train_gpt2 cannot use this directory; prepare again with --overwrite "
              "and a larger --val-fraction, a smaller --shard-tokens or fewer --val-shards",
              file=sys.stderr)
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.input is None and args.hf_dataset is None:
            data = import_module("sprints.09_train_gpt2.results.data")  # imports torch: only here
            args.input = data.download(dest=data.DEFAULT_DATA_FILE, offline_hint=(
                "pass a local text, .jsonl or .parquet file, or a directory of them, with "
                "--input PATH"))
        corpus = open_corpus(args.input, hf_dataset=args.hf_dataset, hf_config=args.hf_config,
                             split=args.split, text_field=args.text_field)
        out_dir = args.out_dir or default_out_dir(args)
        prepare(corpus, out_dir, tokenizer=args.tokenizer, shard_tokens=args.shard_tokens,
                validation=validation_rule(args), workers=args.workers,
                overwrite=args.overwrite, progress=not args.no_progress)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last whole shard",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
