"""One optimizer step of train_gpt2: micro-batches, gradient accumulation, the loss averaged
over processes, clipping, the update.
"""

from __future__ import annotations

import contextlib
import math
import os

import torch
import torch.distributed as dist

from . import data as data_lib
from . import fsdp
from .precision import autocast

# Testing hook: TRAIN_GPT2_INJECT_NAN_AT_STEP=k turns the loss of optimizer step k into NaN
# (k:inf into +infinity), to check that a diverged run stops and keeps its last good checkpoint.
NAN_HOOK_ENV = "TRAIN_GPT2_INJECT_NAN_AT_STEP"


class TrainingError(RuntimeError):
    """A run that had to stop (NaN loss, failed save); the message says what survived."""


def injected_loss_factor(step: int) -> float:
    """1.0, or the NaN/inf that NAN_HOOK_ENV asks for at optimizer step ``step`` (1-based)."""
    spec = os.environ.get(NAN_HOOK_ENV, "-1").split(":")
    if int(spec[0]) != step:
        return 1.0
    return float(spec[1] if len(spec) > 1 else "nan")


def train_step(runner: torch.nn.Module, optimizer, params: list[torch.Tensor], train_ids,
               args, step: int, device: torch.device, dtype: torch.dtype, rank: int = 0,
               world_size: int = 1) -> tuple[float, float | None]:
    """Run optimizer step ``step`` (0-based) and return (loss, gradient norm before clipping).

    The loss is the mean over the micro-batches and over all processes, the same number on
    every rank. A NaN or infinite loss applies no update and returns (loss, None): the caller
    stops the run while the last checkpoint is still good.
    """
    loss_sum = torch.zeros((), device=device)
    for micro in range(args.grad_accum_steps):
        # The batch is a function of (seed, step, micro, rank): nothing to save for a resume.
        x, y = data_lib.get_batch(train_ids, args.block_size, args.batch_size, args.seed, step,
                                  micro, rank, world_size)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        last = micro == args.grad_accum_steps - 1
        with gradient_sync(runner, last or world_size == 1):
            with autocast(device, dtype):
                loss = runner(x, y)
            # Each micro-batch's mean loss / k: the summed gradients are those of the mean
            # over all k micro-batches, as one big batch would give.
            (loss / args.grad_accum_steps).backward()
        loss_sum += loss.detach().float()
    step_loss = loss_sum / args.grad_accum_steps * injected_loss_factor(step + 1)
    if world_size > 1:
        dist.all_reduce(step_loss)
        step_loss /= world_size
    loss_value = step_loss.item()
    if not math.isfinite(loss_value):
        optimizer.zero_grad(set_to_none=True)
        return loss_value, None
    if args.grad_clip and args.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
    else:
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor, the norm over all shards
        grad_norm = grad_norm.full_tensor()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_value, grad_norm.item()


def gradient_sync(runner: torch.nn.Module, enabled: bool):
    """Whether this backward sends its gradients to the other processes.

    Accumulation steps that are not the last keep their gradients local: DDP's ``no_sync()``
    skips the all-reduce, FSDP's ``set_requires_gradient_sync(False)`` the reduce-scatter.
    """
    if hasattr(runner, "no_sync"):  # DDP
        return contextlib.nullcontext() if enabled else runner.no_sync()
    model = getattr(runner, "model", None)
    if fsdp.is_sharded(model):
        fsdp.set_gradient_sync(model, enabled)
    return contextlib.nullcontext()
