"""The tokens train_gpt2 trains on and the tokenizer that made them: from a text file (read
whole, tokenized once and cached), or from a directory of memory-mapped shards written by
prepare_data.py (``--data-dir``), for corpora of any size.
"""

from __future__ import annotations

from importlib import import_module

import torch.distributed as dist

from . import data as data_lib
from . import shards

_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")


def load_training_data(args, ckpt_tokenizer: dict | None, rank: int):
    """(tokenizer, TokenData): from ``--data-dir`` if given, else from a text file."""
    if args.data_dir is not None:
        return load_prepared(args, ckpt_tokenizer, rank)
    return load_text_and_tokenizer(args, ckpt_tokenizer, rank)


def load_prepared(args, ckpt_tokenizer: dict | None, rank: int):
    """The shards of ``--data-dir``, checked (manifest, sizes, sha256) before training starts.

    Rank 0 verifies first; the other ranks open the directory after a barrier and find every
    shard in its verified cache instead of hashing it again.
    """
    if dist.is_initialized() and rank != 0:
        dist.barrier()
    prepared = shards.open_prepared(args.data_dir)
    if dist.is_initialized() and rank == 0:
        dist.barrier()
    kind = prepared.tokenizer["type"]
    if args.tokenizer is not None and args.tokenizer != kind:
        prepared.check_fits(prepared.vocab_size, args.tokenizer)  # raises, with advice
    if (ckpt_tokenizer or {}).get("type") == kind == "bpe" and (
            ckpt_tokenizer != prepared.tokenizer):
        raise data_lib.DataError(
            f"{args.data_dir} was prepared with another tokenizer.json than the checkpoint's: "
            "the same id would mean another token; prepare the text with the checkpoint's "
            "tokenizer, or train from scratch")
    if ckpt_tokenizer is not None and ckpt_tokenizer.get("type") != kind:
        raise data_lib.DataError(
            f"{args.data_dir} holds {kind} token ids but the checkpoint's model reads "
            f"{ckpt_tokenizer.get('type')} ids; prepare the text with --tokenizer "
            f"{ckpt_tokenizer.get('type')}")
    if kind == "char" and ckpt_tokenizer is not None and (
            ckpt_tokenizer.get("chars") != prepared.tokenizer.get("chars")):
        raise data_lib.DataError(
            f"{args.data_dir} was prepared with another character vocabulary than the "
            "checkpoint's: the same id would mean another character; prepare the text with "
            "the checkpoint's tokenizer, or train from scratch")
    args.tokenizer = kind
    return prepared.make_tokenizer(), data_lib.TokenData(train=prepared.train,
                                                         val=prepared.val)


def bpe_tokenizer(name: str, ckpt_tokenizer: dict | None):
    """The tokenizer.json BPE that ``--tokenizer PATH`` names or the checkpoint records
    (``name == "bpe"``); a file other than the checkpoint's is refused, since the model's
    embedding rows belong to the checkpoint's ids."""
    recorded = ckpt_tokenizer if (ckpt_tokenizer or {}).get("type") == "bpe" else None
    if name == "bpe":
        return _tokenizer.TokenizerJSON.from_dict(recorded)
    tokenizer = _tokenizer.TokenizerJSON.from_file(name)
    if ckpt_tokenizer is not None and tokenizer.to_dict() != ckpt_tokenizer:
        raise ValueError(f"--tokenizer {name} is not the tokenizer the checkpoint was trained "
                         "with; leave --tokenizer out to use the checkpoint's own")
    return tokenizer


def load_text_and_tokenizer(args, ckpt_tokenizer: dict | None, rank: int):
    """(tokenizer, TokenData) for ``--data-file`` or the downloaded Tiny Shakespeare.

    A checkpoint's character vocabulary is reused (its ids are baked into the model), and
    text with characters outside it is refused.
    """
    if args.data_file is None:
        path = args.download_dir / "input.txt"
        if rank == 0:
            data_lib.download(args.data_url, path)
        if dist.is_initialized():
            dist.barrier()  # the other ranks read the file rank 0 wrote
    else:
        path = args.data_file
    text = data_lib.read_text(path)
    train_text, val_text = data_lib.split_text(text, args.val_fraction)
    if args.tokenizer == "gpt2":
        tokenizer = _tokenizer.get_tokenizer("gpt2")
    elif args.tokenizer == "bpe" or _tokenizer.is_tokenizer_file(str(args.tokenizer)):
        tokenizer = bpe_tokenizer(args.tokenizer, ckpt_tokenizer)
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
