"""What train_gpt2 measures while it trains: the validation loss over the whole split (or a
fixed prefix of it), and a short text sample.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from . import data as data_lib
from .lm_loss import LanguageModelLoss
from .precision import autocast


@torch.inference_mode()
def evaluate(loss_module: LanguageModelLoss, val_ids, block_size: int, batch_size: int,
             device: torch.device, dtype: torch.dtype, rank: int = 0, world_size: int = 1,
             max_tokens: int | None = None, lockstep: bool = False) -> float:
    """Mean next-token loss over EVERY token of the validation split (non-overlapping windows,
    ``data.iter_eval_batches``), or over its first ``max_tokens`` predictions.

    Each rank takes every world_size-th batch; the (loss sum, count) pairs are all-reduced,
    so every rank returns the same number. Sums are float64: at millions of tokens a float32
    running sum would lose the digits that tell two runs apart.

    ``lockstep`` (FSDP): every forward is a collective (the weights are gathered from all
    ranks), so a rank that has no batch left still runs one, on its last batch, and does not
    count it, until every rank is done.
    """
    model = loss_module.model
    model.eval()
    total = torch.zeros(2, dtype=torch.float64)
    batches = data_lib.iter_eval_batches(val_ids, block_size, batch_size, max_tokens)
    done, spare, n_batches = 0, None, 0
    for i, batch in enumerate(batches):
        n_batches, spare = i + 1, spare or batch
        if i % world_size == rank:
            total += _loss_sum_and_count(loss_module, *batch, device, dtype)
            done += 1
    if lockstep:
        rounds = -(-n_batches // world_size)  # ceil: the number of batches of rank 0
        for _ in range(rounds - done):
            _loss_sum_and_count(loss_module, *spare, device, dtype)  # not counted
    if world_size > 1:
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()


def _loss_sum_and_count(loss_module: LanguageModelLoss, x, y, device, dtype) -> torch.Tensor:
    """(summed loss, number of predictions) of one batch, float64. The loss module is the
    one training calls (chunked or plain), unwrapped from DDP, whose hooks would expect every
    rank to run the same forwards."""
    x, y = x.to(device), y.to(device)
    with autocast(device, dtype):
        loss = loss_module(x, y)
    return torch.tensor([loss.double().item() * y.numel(), y.numel()], dtype=torch.float64)


@torch.inference_mode()
def sample_text(model, tokenizer, n_tokens: int, seed: int, device, prompt: str = "\n") -> str:
    """Ancestral sampling (temperature 1, top-k 40), with its own RNG so training's is untouched."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    try:
        ids = tokenizer.encode(prompt)
    except ValueError:
        ids = [0]
    idx = torch.tensor([ids or [0]], dtype=torch.long, device=device)
    for _ in range(n_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])
        logits = logits[:, -1, :].float()
        # Rows past the tokenizer's vocabulary (padding to a multiple of 64) are no token.
        logits[:, tokenizer.vocab_size:] = -float("inf")
        top = torch.topk(logits, min(40, logits.size(-1)))
        logits[logits < top.values[:, -1:]] = -float("inf")
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
        idx = torch.cat([idx, nxt], dim=1)
    model.train()
    return tokenizer.decode(idx[0, len(ids or [0]):].tolist())
