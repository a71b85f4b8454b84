"""The tokens train_gpt2 trains on and the tokenizer that made them, from a text file (read
whole, tokenized once and cached).
"""

from __future__ import annotations

from importlib import import_module

import torch.distributed as dist

from . import data as data_lib

_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")


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
