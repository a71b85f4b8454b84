"""Train a byte-level BPE vocabulary on a corpus and write it as a ``tokenizer.json``.

    uv run python -m sprints.11_tokenizer.results.train_tokenizer \\
        --input data/tinyshakespeare/input.txt --vocab-size 2048 --out tokenizer.json

``--input`` is read as sprint 9's prepare_data reads it (``corpus_readers.open_corpus``): a
text file, a JSON Lines file (the ``--text-field`` of each line), a Parquet file, or a
directory of them. ``--backend scratch`` (default) trains with this sprint's ``bpe.py``;
``--backend tokenizers`` with Hugging Face's Rust BpeTrainer (much faster on big corpora).
Both split out the special tokens first, pre-tokenize with GPT-2's regex, break ties the same
way, and write the same layout: ids 0..255 the bytes in GPT-2's order, then the merged
tokens, then the special tokens. The file loads with ``tokenizers.Tokenizer.from_file``,
``bpe.BPETokenizer.load`` and ``--tokenizer tokenizer.json`` in sprints 9 and 10.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from importlib import import_module
from itertools import chain
from pathlib import Path

from . import bpe

corpus_readers = import_module("sprints.09_train_gpt2.results.corpus_readers")
data_errors = import_module("sprints.09_train_gpt2.results.data_errors")


class UsageError(Exception):
    """Input that can't be used; the message says what to do instead."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a byte-level BPE tokenizer and save it as tokenizer.json.")
    parser.add_argument("--input", required=True,
                        help="a text, .jsonl or .parquet file, or a directory of them")
    parser.add_argument("--vocab-size", type=int, required=True,
                        help="tokens in the vocabulary: 256 bytes + merges + special tokens")
    parser.add_argument("--out", default="tokenizer.json", help="where to write tokenizer.json")
    parser.add_argument("--backend", choices=("scratch", "tokenizers"), default="scratch",
                        help="scratch: this sprint's bpe.py; tokenizers: Hugging Face's "
                             "BpeTrainer (the fast path for big corpora)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes that count chunks (scratch backend)")
    parser.add_argument("--special-tokens", nargs="*", default=[bpe.EOT], metavar="TOKEN",
                        help=f"special tokens, given the last ids (default: {bpe.EOT})")
    parser.add_argument("--max-bytes", type=float, default=None,
                        help="read only about this many bytes of the input (quick runs)")
    parser.add_argument("--text-field", default="text",
                        help="the field of JSON Lines / column of Parquet that holds the text")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def read_texts(corpus, max_bytes: float | None) -> Iterator[str]:
    """The corpus as pieces of text (each ends at a place where GPT-2's regex would cut
    anyway, so pieces count exactly like whole documents), stopping after ``max_bytes``."""
    seen = 0
    for piece in corpus.iter_pieces():
        if max_bytes is not None and seen >= max_bytes:
            return
        seen += len(piece.text.encode("utf-8"))
        yield piece.text


def train_scratch(args, corpus) -> tuple[bpe.BPETokenizer, int, int]:
    """(tokenizer, bytes, tokens of the training text under the learned merges)."""
    total = corpus.total_bytes if args.max_bytes is None else min(corpus.total_bytes,
                                                                   int(args.max_bytes))
    counts = bpe.count_chunks(read_texts(corpus, args.max_bytes), args.special_tokens,
                              workers=args.workers, progress=not args.no_progress,
                              total_bytes=total)
    if not counts:
        raise UsageError(f"{args.input} holds no text to train on; pass a corpus with text")
    trainer = bpe.BPETrainer(counts)
    trainer.train(args.vocab_size - len(args.special_tokens), progress=not args.no_progress)
    # Training ends with the text split exactly as encoding by rank would split it.
    return trainer.tokenizer(args.special_tokens), trainer.n_bytes, trainer.n_tokens


def train_with_tokenizers(args, corpus) -> tuple[bpe.BPETokenizer, int, int]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    splitter = bpe.special_splitter(args.special_tokens)
    n_bytes = 0

    def parts() -> Iterator[str]:
        # Special tokens split out as in the scratch backend (tokenizers' trainer would
        # otherwise learn "<|" and "endoftext" from them).
        nonlocal n_bytes
        for text in read_texts(corpus, args.max_bytes):
            for part in splitter.split(text)[::2] if splitter is not None else [text]:
                n_bytes += len(part.encode("utf-8"))
                yield part

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab_size, special_tokens=args.special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=not args.no_progress)
    tok.train_from_iterator(parts(), trainer)
    trained_bytes = n_bytes
    if trained_bytes == 0:
        raise UsageError(f"{args.input} holds no text to train on; pass a corpus with text")
    # Renumber into bpe.py's layout: its merges, spelled as bytes, are all that is kept.
    theirs = bpe.BPETokenizer.from_spec(json.loads(tok.to_str()))
    merges = [(theirs.token_bytes[a], theirs.token_bytes[b]) for a, b in theirs.merges]
    ours = bpe.BPETokenizer.from_merges(merges, args.special_tokens)
    # Bytes per token: the training text encoded again, by the Rust encoder (fast).
    fast = Tokenizer.from_str(json.dumps(ours.to_spec()))
    n_tokens, batch = 0, []
    for part in chain(parts(), [None]):
        if part is not None:
            batch.append(part)
        if batch and (part is None or len(batch) >= 1024):
            n_tokens += sum(len(e.ids) for e in fast.encode_batch_fast(
                batch, add_special_tokens=False))
            batch = []
    return ours, trained_bytes, n_tokens


def run(args) -> None:
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: pass 1 or more")
    if args.max_bytes is not None and args.max_bytes <= 0:
        raise UsageError(f"--max-bytes {args.max_bytes:g}: pass a positive number of bytes")
    try:
        special_tokens = bpe.check_special_tokens(args.special_tokens)
        bpe.check_vocab_size(args.vocab_size, special_tokens)
    except ValueError as error:
        raise UsageError(str(error).replace("vocabulary size", "--vocab-size")) from None
    out = Path(args.out)
    if out.parent != Path() and not out.parent.is_dir():
        raise UsageError(f"--out {out}: the directory {out.parent} does not exist; create it "
                         "or pass another path")
    corpus = corpus_readers.open_corpus(args.input, text_field=args.text_field)
    start = time.perf_counter()
    train = train_scratch if args.backend == "scratch" else train_with_tokenizers
    tokenizer, n_bytes, n_tokens = train(args, corpus)
    seconds = time.perf_counter() - start
    tokenizer.save(out)
    merged = tokenizer.vocab_size - 256 - len(special_tokens)
    note = "" if merged == args.vocab_size - 256 - len(special_tokens) else \
        " (the corpus ran out of pairs to merge)"
    print(f"learned {len(tokenizer.merges):,} merges ({tokenizer.vocab_size:,} tokens{note}) "
          f"in {seconds:.1f} s with --backend {args.backend}; {n_bytes / 1e6:.2f} MB of text, "
          f"{n_bytes / max(n_tokens, 1):.3f} bytes per token; wrote {out}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (UsageError, data_errors.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # unreadable file, full disk: the system's words are clear
        print(f"error: {error.filename or args.input}: {error.strerror or error}; check the "
              "path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
