"""Building the model train_gpt2 trains: from scratch, from GPT-2's weights or from a checkpoint,
checked against the data, then wrapped for speed (torch.compile) and for several processes (DDP;
FSDP is in fsdp.py).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import torch

from .lm_loss import LanguageModelLoss

_config = import_module("sprints.08_gpt2_assembly.results.config")
_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")
_model = import_module("sprints.08_gpt2_assembly.results.model")
GPTConfig, GPT = _config.GPTConfig, _model.GPT


def is_pretrained_name(init_from: str) -> bool:
    """"gpt2", "gpt2-medium", ...: a Hugging Face hub name (unless a local path has that name)."""
    return init_from.startswith("gpt2") and not Path(init_from).exists()


def model_vocab_size(tokenizer) -> int:
    """Embedding rows of a new model: a tokenizer.json BPE's vocabulary padded up to a multiple
    of 64 (sprint 8's ``padded_vocab_size`` says why that is faster). GPT-2's 50,257 stays
    exact, since Hugging Face GPT-2 files and the GGUF export expect it, and so does the
    character vocabulary, whose handful of rows cost nothing."""
    if tokenizer.name == "bpe":
        return _tokenizer.padded_vocab_size(tokenizer.vocab_size)
    return tokenizer.vocab_size


def build_model(args, vocab_size: int) -> GPT:
    """The GPT that ``--init-from`` names, with ``vocab_size`` from the tokenizer for a new one."""
    src = args.init_from
    if src == "scratch":
        cfg = GPTConfig(vocab_size=vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                        n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
                        bias=args.bias, activation=args.activation)
        return GPT(cfg)
    if is_pretrained_name(src) or Path(src).is_dir():
        try:
            return GPT.from_pretrained(src, dropout=args.dropout)
        except (OSError, ValueError) as error:
            raise ValueError(f"--init-from {src}: could not load GPT-2 weights ({error}); "
                             "pass a local Hugging Face GPT-2 directory") from error
    if Path(src).is_file():
        model, _ = GPT.from_checkpoint(src)
        return model
    raise ValueError(f"--init-from {src!r} is neither 'scratch', a GPT-2 name, a directory "
                     "nor a checkpoint file")


def check_model_fits(model: GPT, args, tokenizer_vocab: int) -> None:
    """A model whose vocabulary or context is too small for the data is refused with advice."""
    if model.config.vocab_size < tokenizer_vocab:
        raise ValueError(f"the model's vocabulary ({model.config.vocab_size}) is smaller than "
                         f"the {args.tokenizer} tokenizer's ({tokenizer_vocab}); pass the "
                         "matching --tokenizer")
    if args.init_from != "scratch" and args.block_size > model.config.block_size:
        raise ValueError(f"--block-size {args.block_size} is beyond the model's block_size "
                         f"{model.config.block_size} (its number of position embeddings); "
                         f"use --block-size {model.config.block_size} or less")


def default_loss_chunk(vocab_size: int) -> int:
    """The chunked output-layer + loss pays off only for big vocabularies (README: 1.9x at
    GPT-2's 50,257; the 65-character vocabulary gains nothing)."""
    return 2048 if vocab_size >= 8192 else 0


def wrap_for_training(loss_module: LanguageModelLoss, device: torch.device, world_size: int,
                      compile_model: bool, parallel: str = "ddp") -> torch.nn.Module:
    """What the loop calls: the loss module, maybe compiled, and under DDP with several ranks.

    DDP wraps the loss module (not the bare GPT) so that the chunked loss's backward runs
    inside DDP's gradient hooks; ``no_sync()`` then skips the all-reduce of accumulation steps.
    With ``parallel="fsdp"`` the GPT inside is already sharded (``fsdp.shard_model``), which
    does the communication itself: nothing more to wrap.
    """
    runner: torch.nn.Module = loss_module
    if compile_model:
        runner = torch.compile(loss_module)
    if world_size > 1 and parallel == "ddp":
        runner = torch.nn.parallel.DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None)
    return runner
